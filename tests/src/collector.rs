//! An HTTP collector for the `http` sink's tests: a plain HTTP/1.1 server on 127.0.0.1
//! that takes POSTed JSON lines (gzip or not) and records every event, and that can be
//! told to fail: answer a status a number of times, refuse requests holding a text with
//! 400, or stop listening and come back on the same port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

/// Largest body accepted; larger ones get 413.
pub const MAX_BODY: usize = 8 << 20;

/// What the collector answers.
#[derive(Debug, Default)]
struct Behaviour {
    /// The next requests get these statuses (with an optional Retry-After), in order.
    fail: Vec<(u16, Option<u32>)>,
    /// Requests whose body holds this text get 400.
    refuse: Option<String>,
}

#[derive(Debug, Default)]
struct Record {
    /// Every event taken, as JSON, in arrival order.
    events: Vec<serde_json::Value>,
    /// Requests answered, by status.
    statuses: Vec<u16>,
    /// Content-Encoding values seen.
    gzip_requests: usize,
}

/// A running collector; stops when dropped.
#[derive(Debug)]
pub struct Collector {
    /// Where it listens (the same after [`Collector::restart`]).
    pub addr: SocketAddr,
    record: Arc<Mutex<Record>>,
    behaviour: Arc<Mutex<Behaviour>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    /// Starts listening on a free port.
    pub fn start() -> anyhow::Result<Collector> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the collector")?;
        let addr = listener.local_addr()?;
        let mut c = Collector {
            addr,
            record: Default::default(),
            behaviour: Default::default(),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        c.serve(listener)?;
        Ok(c)
    }

    fn serve(&mut self, listener: TcpListener) -> anyhow::Result<()> {
        listener.set_nonblocking(true)?;
        self.stop = Arc::new(AtomicBool::new(false));
        let (rec, beh, stop) = (
            self.record.clone(),
            self.behaviour.clone(),
            self.stop.clone(),
        );
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = handle(conn, &rec, &beh);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
        Ok(())
    }

    /// `http://ADDR/ingest`.
    pub fn url(&self) -> String {
        format!("http://{}/ingest", self.addr)
    }

    /// Stops listening: connections are refused until [`Collector::restart`].
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(self.addr).context("rebinding the collector")?;
        self.serve(listener)
    }

    /// The next `n` requests are answered `status` (with `Retry-After: secs` if given).
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u32>) {
        let mut b = self.behaviour.lock().unwrap_or_else(|p| p.into_inner());
        b.fail.extend(std::iter::repeat_n((status, retry_after), n));
    }

    /// Requests whose body holds `text` are answered 400.
    pub fn refuse_containing(&self, text: &str) {
        self.behaviour
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .refuse = Some(text.to_owned());
    }

    /// Every event taken so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .clone()
    }

    /// The `message` of every event taken so far.
    pub fn messages(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| e["message"].as_str().map(str::to_owned))
            .collect()
    }

    /// The statuses answered so far, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .statuses
            .clone()
    }

    /// Requests that came gzip-compressed.
    pub fn gzip_requests(&self) -> usize {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .gzip_requests
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

fn respond(mut out: &TcpStream, status: u16, extra: &str) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n{extra}\r\nno"
    )
}

/// Reads one request (one per connection) and answers it.
fn handle(conn: TcpStream, rec: &Mutex<Record>, beh: &Mutex<Behaviour>) -> anyhow::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let (mut length, mut gzip) = (0usize, false);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let k = k.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("content-encoding") {
                gzip = v.trim().eq_ignore_ascii_case("gzip");
            }
        }
    }
    let status = |s: u16| {
        rec.lock()
            .unwrap_or_else(|p| p.into_inner())
            .statuses
            .push(s)
    };
    if length > MAX_BODY {
        status(413);
        return Ok(respond(&conn, 413, "")?);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    if gzip {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain)?;
        body = plain;
    }
    let mut b = beh.lock().unwrap_or_else(|p| p.into_inner());
    if !b.fail.is_empty() {
        let (s, retry_after) = b.fail.remove(0);
        drop(b);
        status(s);
        let extra = retry_after.map_or(String::new(), |r| format!("retry-after: {r}\r\n"));
        return Ok(respond(&conn, s, &extra)?);
    }
    if let Some(bad) = &b.refuse {
        if memchr_contains(&body, bad.as_bytes()) {
            drop(b);
            status(400);
            return Ok(respond(&conn, 400, "")?);
        }
    }
    drop(b);
    let mut events = Vec::new();
    for line in body.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        events.push(serde_json::from_slice(line).context("a line that is not JSON")?);
    }
    {
        let mut r = rec.lock().unwrap_or_else(|p| p.into_inner());
        r.events.extend(events);
        r.statuses.push(200);
        r.gzip_requests += usize::from(gzip);
    }
    Ok(respond(&conn, 200, "")?)
}

fn memchr_contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
