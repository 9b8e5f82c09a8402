//! The syslog input: RFC 5426 over UDP, RFC 6587 over TCP and RFC 5425 over TLS.
//!
//! - [`framing`]: the pure stream decoder (octet counting or line feeds, detected per
//!   message), with the length limits.
//! - [`listener`]: TCP and TLS: accept with a connection limit, read with idle and
//!   slow-client timeouts, decode, hand chunks to the feed (waiting when it is full).
//! - [`udp`]: one message per datagram; drops are counted when the feed is full.
//!
//! Every message becomes one record of a wire batch (see [`super::feed`]) whose source is
//! the input and the peer: `source.path` = `syslog+<mode>://<peer ip>/<input name>`
//! (IPv6 in brackets), `source.type` = `syslog`, `host` = the peer's address. The lines
//! are parsed as `format` says (default `syslog`: RFC 5424 and RFC 3164, the sender's
//! hostname in `fields.hostname`). Record flags: `truncated` (over `max_message_bytes`),
//! `no_newline` (the connection ended inside the message), `invalid_utf8`.

pub mod config;
pub mod framing;
pub mod listener;
pub mod udp;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;

pub use config::{Mode, SyslogInputConfig, SyslogTlsConfig};

use super::feed::{self, FeedSettings, Origin, WhenFull};
use super::{InputContext, Started};

/// Chunks queued between the listeners and the feed, per input: at most one read
/// (64 KiB) each, so about 2 MiB for TCP; UDP queues more to ride out an fsync.
const TCP_QUEUE_CHUNKS: usize = 32;
const UDP_QUEUE_CHUNKS: usize = 128;

/// Binds the listener and starts it and its feed.
pub async fn start(cfg: &SyslogInputConfig, ctx: &InputContext) -> anyhow::Result<Started> {
    let name = cfg.name();
    let settings = |when_full, queue_chunks| FeedSettings {
        input: name.clone(),
        source_type: "syslog",
        batch_max_bytes: cfg.batch_max_bytes,
        batch_wait: cfg.batch_wait,
        when_full,
        queue_chunks,
    };
    let component = format!("input.{name}");
    let (addr, tasks) = match cfg.mode {
        Mode::Udp => {
            let socket = tokio::net::UdpSocket::bind(cfg.listen)
                .await
                .with_context(|| format!("listen {} (udp)", cfg.listen))?;
            let addr = socket.local_addr()?;
            udp::set_receive_buffer(&socket, &name, cfg.receive_buffer_bytes);
            let (tx, feed) = feed::spawn(settings(WhenFull::Drop, UDP_QUEUE_CHUNKS), ctx);
            let udp = udp::UdpListener::new(cfg, socket, tx, ctx.shutdown.clone());
            (addr, vec![tokio::spawn(udp.run()), feed])
        }
        Mode::Tcp | Mode::Tls => {
            let tls = match &cfg.tls {
                Some(t) if cfg.mode == Mode::Tls => {
                    let mut server = logferry_shared::tls::server_config(
                        &t.cert,
                        &t.key,
                        t.client_ca.as_deref(),
                    )?;
                    // Syslog senders offer no ALPN; offering HTTP would only mislead.
                    server.alpn_protocols.clear();
                    Some(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
                }
                _ => None,
            };
            let socket = tokio::net::TcpListener::bind(cfg.listen)
                .await
                .with_context(|| format!("listen {} ({})", cfg.listen, cfg.mode.name()))?;
            let addr = socket.local_addr()?;
            let (tx, feed) = feed::spawn(settings(WhenFull::Block, TCP_QUEUE_CHUNKS), ctx);
            let listener =
                listener::StreamListener::new(cfg, socket, tls, tx, ctx.shutdown.clone());
            (addr, vec![tokio::spawn(listener.run()), feed])
        }
    };
    tracing::info!(component = %component, addr = %addr, mode = cfg.mode.name(), format = %cfg.format, "listening");
    Ok(Started { name, addr, tasks })
}

/// The origin of messages from `peer` on input `name` (see the module docs).
pub fn origin(mode: Mode, name: &str, peer: IpAddr) -> Arc<Origin> {
    let peer = peer.to_canonical();
    let host = peer.to_string();
    let path = match peer {
        IpAddr::V4(_) => format!("syslog+{}://{host}/{name}", mode.name()),
        IpAddr::V6(_) => format!("syslog+{}://[{host}]/{name}", mode.name()),
    };
    Arc::new(Origin { path, host })
}

/// The peer's address without the port.
pub fn peer_ip(addr: SocketAddr) -> IpAddr {
    addr.ip().to_canonical()
}
