//! Counting one batch's events into the summaries with as little work per event as
//! possible: levels, requests, status classes and sections go into the open interval
//! event by event (no lookup but the section's), while events per source, per host and
//! per namespace are added up per source of the batch and counted once, at
//! [`BatchTally::finish`].
//!
//! Invariant: the summaries end up exactly as if every event had been passed to
//! [`TrafficStats::record`] one by one at the same time. Within one interval a key's place
//! in a bounded [`TopCounter`](super::TopCounter) is decided when the key first appears
//! (it has a slot, gets one, or is counted under `other`) and no key ever leaves, so only
//! the order in which keys first appear matters; `finish` adds the sources (and their
//! namespaces) in the order of their first event.

use logferry_shared::event::Level;

use super::{section, Open, Request, TrafficStats};

/// Where the events of one batch source come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceKeys<'b> {
    /// Source file.
    pub path: &'b str,
    /// Kubernetes namespace.
    pub namespace: Option<&'b str>,
    /// The host the source's events come from (the source's `host` attribute, else the
    /// batch's host); empty when unknown.
    pub host: &'b str,
}

/// The events of one batch, on their way into [`TrafficStats`]. Made by
/// [`TrafficStats::tally`]; nothing is counted per source until [`BatchTally::finish`].
#[derive(Debug)]
pub struct BatchTally<'s, 'b> {
    open: &'s mut Open,
    sources: Vec<SourceKeys<'b>>,
    /// Events per source index.
    counts: Vec<u64>,
    /// Source indexes in the order of their first event.
    order: Vec<usize>,
    /// Events counted.
    events: u64,
}

impl TrafficStats {
    /// Starts counting one batch's events at `now_ms`: each comes from one of `sources`,
    /// by index.
    pub fn tally<'s, 'b>(
        &'s mut self,
        now_ms: u64,
        sources: Vec<SourceKeys<'b>>,
    ) -> BatchTally<'s, 'b> {
        let counts = vec![0; sources.len()];
        BatchTally {
            open: self.open_at(now_ms),
            sources,
            counts,
            order: Vec::new(),
            events: 0,
        }
    }
}

impl BatchTally<'_, '_> {
    /// Counts one event of source `source`, an index into the batch's sources (an event
    /// of another index is counted in every dimension but its source's and namespace's).
    pub fn add(&mut self, source: usize, level: Option<Level>, request: Option<Request<'_>>) {
        let o = &mut *self.open;
        o.events += 1;
        o.levels.add(level, 1);
        self.events += 1;
        if let Some(c) = self.counts.get_mut(source) {
            if *c == 0 {
                self.order.push(source);
            }
            *c += 1;
        }
        if let Some(r) = request {
            o.requests += 1;
            if (100..600).contains(&r.status) {
                o.classes[usize::from(r.status / 100 - 1)] += 1;
            }
            if let Some(p) = r.path {
                o.sections.add(section(p), 1);
            }
        }
    }

    /// Counts the events per source, host and namespace.
    pub fn finish(self) {
        let o = self.open;
        for &i in &self.order {
            let (keys, n) = (self.sources[i], self.counts[i]);
            o.sources.add(keys.path, n);
            if let Some(ns) = keys.namespace {
                o.namespaces.add(ns, n);
            }
            if !keys.host.is_empty() {
                o.hosts.add(keys.host, n);
            }
        }
    }
}
