//! Syslog over TCP (RFC 6587) and TLS (RFC 5425): the accept loop and one task per
//! connection.
//!
//! - At most `max_connections` connections are served; one more is accepted and closed
//!   at once (counted `refused`, logged at most every 10 s), so a flood cannot queue up
//!   in the backlog unseen. TLS handshakes must finish within [`HANDSHAKE_TIMEOUT`].
//! - A connection reads at most [`READ_BYTES`] at a time, cuts messages with the
//!   [`framing`](super::framing) decoder and hands them to the feed, waiting while the feed
//!   is full: nothing more is read meanwhile, so the kernel's flow control slows the
//!   sender instead of the aggregator dropping lines.
//! - A connection is closed when it sends nothing for `idle_timeout` (`idle_timeout`),
//!   leaves a message unfinished for `partial_timeout` (`slow_client`; time spent waiting
//!   for the feed does not count), sends garbage framing (`bad_framing`: a huge octet
//!   count), or at shutdown. Whatever part of a message was read is handed to the feed
//!   first, flagged `no_newline`.

use std::sync::Arc;
use std::time::Duration;

use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::{FLAG_NO_NEWLINE, FLAG_TRUNCATED};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::config::{Mode, SyslogInputConfig};
use super::framing::{Decoder, Message};
use crate::input::feed::{now_ms, Chunk, FeedSender, Origin};
use crate::input::LogLimiter;
use crate::metrics::InputMetrics;

/// Bytes read from a connection at a time (and so the largest chunk sent to the feed,
/// plus one unfinished message).
pub const READ_BYTES: usize = 64 << 10;
/// How long a client may take for the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection of one listener shares.
struct Shared {
    name: String,
    mode: Mode,
    max_message: usize,
    idle_timeout: Duration,
    partial_timeout: Duration,
    feed: FeedSender,
    metrics: InputMetrics,
    shutdown: Shutdown,
    log: LogLimiter,
}

/// A TCP or TLS syslog listener.
pub struct StreamListener {
    socket: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
}

impl StreamListener {
    /// A listener on a bound socket; `tls` for `mode = "tls"`.
    pub fn new(
        cfg: &SyslogInputConfig,
        socket: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        feed: FeedSender,
        shutdown: Shutdown,
    ) -> StreamListener {
        let metrics = feed.metrics().clone();
        StreamListener {
            socket,
            tls,
            permits: Arc::new(Semaphore::new(cfg.max_connections)),
            shared: Arc::new(Shared {
                name: cfg.name(),
                mode: cfg.mode,
                max_message: cfg.max_message_bytes,
                idle_timeout: cfg.idle_timeout,
                partial_timeout: cfg.partial_timeout,
                feed,
                metrics,
                shutdown,
                log: LogLimiter::default(),
            }),
        }
    }

    /// Accepts until shutdown, then waits for every connection to hand over what it read.
    pub async fn run(self) {
        let StreamListener {
            socket,
            tls,
            permits,
            shared,
        } = self;
        let mut conns = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                r = socket.accept() => r,
                () = shared.shutdown.wait() => break,
            };
            while conns.try_join_next().is_some() {}
            let (tcp, peer) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    if shared.log.allow() {
                        tracing::warn!(input = %shared.name, error = %e, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                shared.metrics.connection("refused");
                if shared.log.allow() {
                    tracing::warn!(input = %shared.name, %peer, "too many connections; closing new ones (max_connections)");
                }
                drop(tcp);
                continue;
            };
            shared.metrics.connection("accepted");
            let origin = super::origin(shared.mode, &shared.name, super::peer_ip(peer));
            let (shared, tls) = (shared.clone(), tls.clone());
            conns.spawn(async move {
                let _permit = permit;
                let _open = OpenGuard::new(&shared.metrics);
                let reason = match tls {
                    None => serve(tcp, &shared, &origin).await,
                    Some(acceptor) => match handshake(acceptor, tcp, &shared).await {
                        Some(stream) => serve(stream, &shared, &origin).await,
                        None => "handshake_failed",
                    },
                };
                shared.metrics.closed(reason);
                tracing::debug!(input = %shared.name, %peer, reason, "connection closed");
            });
        }
        drop(socket);
        while conns.join_next().await.is_some() {}
    }
}

/// Counts a connection open for as long as it lives (also when its task is aborted).
struct OpenGuard(prometheus_client::metrics::gauge::Gauge);

impl OpenGuard {
    fn new(m: &InputMetrics) -> OpenGuard {
        m.open_connections.inc();
        OpenGuard(m.open_connections.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    shared: &Shared,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let peer = tcp.peer_addr().ok();
    let result = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => r,
        () = shared.shutdown.wait() => return None,
    };
    let error = match result {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("not finished within {HANDSHAKE_TIMEOUT:?}"),
    };
    shared.metrics.connection("handshake_failed");
    if shared.log.allow() {
        tracing::warn!(input = %shared.name, peer = ?peer, %error, "TLS handshake failed");
    }
    None
}

fn flags(m: &Message<'_>) -> u8 {
    let mut f = 0;
    if m.truncated {
        f |= FLAG_TRUNCATED;
    }
    if m.incomplete {
        f |= FLAG_NO_NEWLINE;
    }
    f
}

/// Reads one connection to its end; returns why it ended (the `closed` reason).
async fn serve<S: AsyncRead + Unpin>(
    mut stream: S,
    shared: &Shared,
    origin: &Arc<Origin>,
) -> &'static str {
    let mut decoder = Decoder::new(shared.max_message);
    let mut buf = vec![0u8; READ_BYTES];
    let mut idle_at = Instant::now() + shared.idle_timeout;
    let mut partial_at: Option<Instant> = None;
    let reason = loop {
        let deadline = partial_at.map_or(idle_at, |p| p.min(idle_at));
        let read = tokio::select! {
            r = stream.read(&mut buf) => r,
            () = tokio::time::sleep_until(deadline) => {
                break if partial_at.is_some_and(|p| p <= Instant::now()) {
                    "slow_client"
                } else {
                    "idle_timeout"
                };
            }
            () = shared.shutdown.wait() => break "shutdown",
        };
        let n = match read {
            Ok(0) => break "eof",
            Ok(n) => n,
            // A peer that closes TLS without close_notify is still just a closed peer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break "eof",
            Err(e) => {
                tracing::debug!(input = %shared.name, peer = %origin.host, error = %e, "read failed");
                break "error";
            }
        };
        shared.metrics.bytes.inc_by(n as u64);
        decoder.feed(&buf[..n]);
        let mut chunk = Chunk::default();
        let observed = now_ms();
        let mut failed = None;
        while let Some(m) = decoder.next_message() {
            match m {
                Ok(m) => chunk.push(origin, m.bytes, flags(&m), observed),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let before_send = Instant::now();
        if shared.feed.send(chunk).await.is_err() {
            break "shutdown";
        }
        // Time spent waiting for the feed is ours, not the client's.
        let now = Instant::now();
        let stalled = now - before_send;
        idle_at = now + shared.idle_timeout;
        if let Some(e) = failed {
            shared.metrics.dropped("bad_framing", 1);
            if shared.log.allow() {
                tracing::warn!(input = %shared.name, peer = %origin.host, error = %e, "bad syslog framing; closing the connection");
            }
            break "bad_framing";
        }
        partial_at = if decoder.in_message() {
            Some(partial_at.map_or(now + shared.partial_timeout, |p| p + stalled))
        } else {
            None
        };
    };
    // What was read of an unfinished message is kept.
    if let Some(m) = decoder.finish() {
        let mut chunk = Chunk::default();
        chunk.push(origin, m.bytes, flags(&m), now_ms());
        let _ = shared.feed.send(chunk).await;
    }
    reason
}
