//! The input benchmark's load generators on 127.0.0.1, one OS thread per connection,
//! as blocking clients: TCP and TLS streams written whole, UDP datagrams, and HTTP POSTs
//! from a shared queue of bodies (a 429 or 503 is retried after a short pause, counted).

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Writes each stream over a connection of its own, all at once, then closes them.
pub fn tcp_streams(addr: SocketAddr, streams: &[Vec<u8>]) {
    std::thread::scope(|s| {
        for stream in streams {
            s.spawn(move || {
                let mut conn = TcpStream::connect(addr).expect("connecting");
                conn.set_nodelay(true).expect("TCP_NODELAY");
                conn.write_all(stream).expect("writing");
                conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
                // Wait (bounded) for the receiver to close its side: it has read everything.
                conn.set_read_timeout(Some(Duration::from_secs(60)))
                    .expect("timeout");
                let mut sink = [0u8; 64];
                let _ = std::io::Read::read(&mut conn, &mut sink);
            });
        }
    });
}

/// As [`tcp_streams`], inside TLS (`client` trusts the server's CA; server name
/// `127.0.0.1`); each connection ends with a close_notify.
pub fn tls_streams(addr: SocketAddr, streams: &[Vec<u8>], client: Arc<rustls::ClientConfig>) {
    std::thread::scope(|s| {
        for stream in streams {
            let client = client.clone();
            s.spawn(move || {
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1")
                    .expect("server name")
                    .to_owned();
                let conn = rustls::ClientConnection::new(client, name).expect("TLS client");
                let tcp = TcpStream::connect(addr).expect("connecting");
                tcp.set_nodelay(true).expect("TCP_NODELAY");
                tcp.set_read_timeout(Some(Duration::from_secs(60)))
                    .expect("timeout");
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                tls.write_all(stream).expect("writing");
                tls.conn.send_close_notify();
                tls.flush().expect("flushing");
                let mut sink = [0u8; 64];
                let _ = std::io::Read::read(&mut tls, &mut sink);
            });
        }
    });
}

/// Sends every datagram from `senders` sockets (datagram `i` from socket
/// `i % senders`), as fast as the kernel takes them.
pub fn udp_datagrams(addr: SocketAddr, datagrams: &[Vec<u8>], senders: usize) {
    std::thread::scope(|s| {
        for k in 0..senders {
            s.spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").expect("binding");
                for d in datagrams.iter().skip(k).step_by(senders) {
                    sock.send_to(d, addr).expect("sending");
                }
            });
        }
    });
}

/// POSTs every body to `url` from `senders` keep-alive clients; returns the number of
/// 429/503 answers retried. Any other answer than 200 stops the benchmark.
pub fn post_bodies(
    url: &str,
    bodies: Vec<bytes::Bytes>,
    content_type: &str,
    gzip: bool,
    senders: usize,
) -> usize {
    let queue = Mutex::new(bodies);
    let retries = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..senders {
            s.spawn(|| {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .expect("HTTP client");
                loop {
                    let Some(body) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                        return;
                    };
                    for attempt in 0.. {
                        let mut req = client
                            .post(url)
                            .header("content-type", content_type)
                            .body(body.clone());
                        if gzip {
                            req = req.header("content-encoding", "gzip");
                        }
                        let resp = req.send().expect("POST");
                        match resp.status().as_u16() {
                            200 => break,
                            429 | 503 if attempt < 10_000 => {
                                retries.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            status => panic!(
                                "{url} answered {status}: {}",
                                resp.text().unwrap_or_default()
                            ),
                        }
                    }
                }
            });
        }
    });
    retries.into_inner()
}
