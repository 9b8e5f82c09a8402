//! Syslog over UDP (RFC 5426): one message per datagram.
//!
//! A datagram longer than `max_message_bytes` is cut to it and flagged `truncated`;
//! trailing line feeds, carriage returns and NULs are removed and empty datagrams
//! ignored. UDP has no flow control, so the socket is read as fast as datagrams come:
//! what the feed cannot take is dropped and counted (`queue_full`, `inbox_full`), and the
//! reader never waits for the inbox. Datagrams the kernel drops because the socket buffer
//! overflowed never reach us; they show as `RcvbufErrors` in `/proc/net/snmp`. The
//! buffer is set to `receive_buffer_bytes` (default 4 MiB, capped by the kernel at
//! `net.core.rmem_max`) to ride out bursts.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::FLAG_TRUNCATED;
use tokio::net::UdpSocket;

use super::config::{Mode, SyslogInputConfig};
use crate::input::feed::{now_ms, Chunk, FeedSender, Origin};
use crate::input::LogLimiter;

/// A chunk is sent to the feed once it holds this many bytes (or no datagram waits).
const CHUNK_BYTES: usize = 64 << 10;
/// Largest UDP payload over IPv4 and IPv6 without jumbograms.
const MAX_DATAGRAM: usize = 65_535;
/// Peers whose [`Origin`] is kept between datagrams; past it the map starts over.
const MAX_ORIGINS: usize = 4096;

/// A UDP syslog listener.
pub struct UdpListener {
    name: String,
    socket: UdpSocket,
    max_message: usize,
    feed: FeedSender,
    shutdown: Shutdown,
    origins: HashMap<IpAddr, Arc<Origin>>,
    log: LogLimiter,
}

impl UdpListener {
    /// A listener on a bound socket.
    pub fn new(
        cfg: &SyslogInputConfig,
        socket: UdpSocket,
        feed: FeedSender,
        shutdown: Shutdown,
    ) -> UdpListener {
        UdpListener {
            name: cfg.name(),
            socket,
            max_message: cfg.max_message_bytes,
            feed,
            shutdown,
            origins: HashMap::new(),
            log: LogLimiter::default(),
        }
    }

    /// Receives until shutdown.
    pub async fn run(mut self) {
        // One byte more than a message may hold, to tell a datagram that was cut.
        let mut buf = vec![0u8; (self.max_message + 1).min(MAX_DATAGRAM)];
        loop {
            let first = tokio::select! {
                r = self.socket.recv_from(&mut buf) => r,
                () = self.shutdown.wait() => break,
            };
            let mut chunk = Chunk::default();
            let observed = now_ms();
            match first {
                Ok((n, peer)) => self.take(&mut chunk, &buf[..n], peer, observed),
                Err(e) => {
                    self.recv_failed(&e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
            // Whatever else is already queued, without waiting: one chunk per wake-up.
            while chunk.bytes() < CHUNK_BYTES {
                match self.socket.try_recv_from(&mut buf) {
                    Ok((n, peer)) => self.take(&mut chunk, &buf[..n], peer, observed),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        self.recv_failed(&e);
                        break;
                    }
                }
            }
            let n = chunk.len();
            match self.feed.try_send(chunk) {
                Ok(true) => {}
                Ok(false) => {
                    if self.log.allow() {
                        tracing::warn!(input = %self.name, messages = n, "the input's queue is full (inbox slow or full); datagrams dropped");
                    }
                }
                Err(_) => break,
            }
        }
    }

    fn recv_failed(&self, e: &std::io::Error) {
        if self.log.allow() {
            tracing::warn!(input = %self.name, error = %e, "receive failed");
        }
    }

    /// Adds one datagram to `chunk`.
    fn take(&mut self, chunk: &mut Chunk, datagram: &[u8], peer: SocketAddr, observed: u64) {
        self.feed.metrics().bytes.inc_by(datagram.len() as u64);
        let (message, truncated) = datagram_message(datagram, self.max_message);
        if message.is_empty() {
            return;
        }
        let ip = super::peer_ip(peer);
        if self.origins.len() >= MAX_ORIGINS && !self.origins.contains_key(&ip) {
            self.origins.clear();
        }
        let name = &self.name;
        let origin = self
            .origins
            .entry(ip)
            .or_insert_with(|| super::origin(Mode::Udp, name, ip));
        let flags = if truncated { FLAG_TRUNCATED } else { 0 };
        chunk.push(origin, message, flags, observed);
    }
}

/// Asks for a receive buffer of `bytes`; logs what the kernel granted when it is less
/// (Linux reports twice the usable size, so half of it is compared).
pub fn set_receive_buffer(socket: &UdpSocket, name: &str, bytes: usize) {
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock.set_recv_buffer_size(bytes) {
        tracing::warn!(input = %name, error = %e, "cannot set the UDP receive buffer");
        return;
    }
    match sock.recv_buffer_size() {
        Ok(got) if got / 2 < bytes && got < bytes => {
            tracing::warn!(input = %name, requested = bytes, granted = got, "the kernel capped the UDP receive buffer; raise net.core.rmem_max to absorb larger bursts");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::debug!(input = %name, error = %e, "cannot read the UDP receive buffer size")
        }
    }
}

/// The message a datagram holds: cut to `max` bytes (then `true`), else without trailing
/// `\n`, `\r` and NUL bytes.
pub fn datagram_message(datagram: &[u8], max: usize) -> (&[u8], bool) {
    if datagram.len() > max {
        return (&datagram[..max], true);
    }
    let end = datagram
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r' | 0))
        .map_or(0, |i| i + 1);
    (&datagram[..end], false)
}
