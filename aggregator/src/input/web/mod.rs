//! What the HTTP inputs (`http`, `otlp`) share: the listener, bearer tokens, body
//! reading with its limits, and [`InboxWriter`](super::admit::InboxWriter) for storing a
//! request's records before answering.
//!
//! The listener ([`serve`]) speaks HTTP/1.1, over TLS when configured:
//! - At most `max_connections` connections are served; one more is accepted and closed at
//!   once (counted `refused` in `logferry_input_connections_total`), so a flood cannot
//!   sit unseen in the backlog. TLS handshakes must finish within `header_timeout`.
//! - A client has `header_timeout` to send each request's headers, which also bounds how
//!   long a kept-alive connection may sit idle (closed `slow_client`), and `body_timeout`
//!   to send the body (answered 408).
//! - At most [`DECODING_AT_ONCE`] requests per input are decompressed and decoded at a
//!   time (the handlers hold a permit of a semaphore of that size).
//! - At shutdown it stops accepting; each connection finishes the request it is serving
//!   (so a client whose records were admitted gets its 2xx) and closes, for at most
//!   [`DRAIN_TIMEOUT`]; what is left is aborted.
//!
//! Handlers get the peer's address as `ConnectInfo<SocketAddr>`.

pub mod auth;
pub mod body;
pub mod config;
#[cfg(test)]
pub mod testkit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use logferry_shared::runtime::Shutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::LogLimiter;
use crate::metrics::InputMetrics;
pub use config::{InputTlsConfig, InputTokenConfig, ServerConfig};

/// Requests of one input decoded (decompressed, parsed, stored) at once; others wait
/// with their body received. With `max_connections` × `max_body_bytes` for bodies being
/// received, this bounds an input's memory: at most this many decompressed bodies and
/// their batches exist at a time.
pub const DECODING_AT_ONCE: usize = 4;

/// How long connections may finish their requests after shutdown begins (below
/// [`super::STOP_TIMEOUT`], so the listener ends by itself).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// A bound HTTP input listener, ready to [`serve`].
pub struct Listener {
    socket: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    max_connections: usize,
    header_timeout: Duration,
}

impl Listener {
    /// Binds `cfg.listen` and loads the TLS material.
    pub async fn bind(cfg: &ServerConfig<'_>) -> anyhow::Result<Listener> {
        let tls = match cfg.tls {
            Some(t) => {
                let mut server =
                    logferry_shared::tls::server_config(&t.cert, &t.key, t.client_ca.as_deref())?;
                // Served as HTTP/1.1 only (see the module docs).
                server.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
            }
            None => None,
        };
        let socket = TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listen {}", cfg.listen))?;
        Ok(Listener {
            socket,
            tls,
            max_connections: cfg.max_connections,
            header_timeout: cfg.header_timeout,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

/// What every connection of one listener shares.
struct Shared {
    name: String,
    router: Router,
    header_timeout: Duration,
    metrics: InputMetrics,
    shutdown: Shutdown,
    log: LogLimiter,
}

/// Serves `router` on `listener` until shutdown, then drains (see the module docs).
pub async fn serve(
    listener: Listener,
    name: String,
    router: Router,
    metrics: InputMetrics,
    shutdown: Shutdown,
) {
    let Listener {
        socket,
        tls,
        max_connections,
        header_timeout,
    } = listener;
    let permits = Arc::new(Semaphore::new(max_connections));
    let shared = Arc::new(Shared {
        name,
        router,
        header_timeout,
        metrics,
        shutdown,
        log: LogLimiter::default(),
    });
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
        let _ = tcp.set_nodelay(true);
        let (shared, tls) = (shared.clone(), tls.clone());
        conns.spawn(async move {
            let _permit = permit;
            shared.metrics.open_connections.inc();
            let _open = open_guard(&shared.metrics);
            let reason = match tls {
                None => connection(tcp, peer, &shared).await,
                Some(acceptor) => match handshake(acceptor, tcp, &shared).await {
                    Some(stream) => connection(stream, peer, &shared).await,
                    None => "handshake_failed",
                },
            };
            shared.metrics.closed(reason);
        });
    }
    drop(socket);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(input = %shared.name, connections = conns.len(), "connections still open after the drain timeout; closing them");
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
}

/// Lowers the open-connections gauge when the connection's task ends (or is aborted).
fn open_guard(m: &InputMetrics) -> impl Drop {
    struct Open(prometheus_client::metrics::gauge::Gauge);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    Open(m.open_connections.clone())
}

async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    shared: &Shared,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let peer = tcp.peer_addr().ok();
    let result = tokio::select! {
        r = tokio::time::timeout(shared.header_timeout, acceptor.accept(tcp)) => r,
        () = shared.shutdown.wait() => return None,
    };
    let error = match result {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("not finished within {:?}", shared.header_timeout),
    };
    shared.metrics.connection("handshake_failed");
    if shared.log.allow() {
        tracing::warn!(input = %shared.name, peer = ?peer, %error, "TLS handshake failed");
    }
    None
}

/// Serves one connection; returns why it ended (the `closed` reason).
async fn connection<S>(stream: S, peer: SocketAddr, shared: &Shared) -> &'static str
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = shared.router.clone();
    let service =
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let (served, stopping) = tokio::select! {
        r = conn.as_mut() => (r, false),
        () = shared.shutdown.wait() => {
            conn.as_mut().graceful_shutdown();
            (conn.await, true)
        }
    };
    match served {
        Ok(()) if stopping => "shutdown",
        Ok(()) => "eof",
        Err(e) if e.is_timeout() => "slow_client",
        Err(e) => {
            tracing::debug!(input = %shared.name, %peer, error = %e, "connection ended with an error");
            "error"
        }
    }
}
