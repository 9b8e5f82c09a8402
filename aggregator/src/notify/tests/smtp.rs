//! A small SMTP server for tests: one connection, EHLO / STARTTLS (rustls, rcgen
//! certificates) / AUTH PLAIN or LOGIN / MAIL / RCPT / DATA / QUIT, recording what it got.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What one session delivered.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub tls_before_auth: bool,
    pub auth: Option<(String, String)>,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
}

pub struct Server {
    pub port: u16,
    pub ca_pem: String,
    done: oneshot::Receiver<Received>,
}

impl Server {
    /// A server offering STARTTLS with a certificate for `localhost`.
    pub async fn start() -> Server {
        Server::spawn(true).await
    }

    /// A server that does not offer STARTTLS.
    pub async fn start_without_tls() -> Server {
        Server::spawn(false).await
    }

    async fn spawn(tls: bool) -> Server {
        let certs =
            logferry_shared::tls::DevCerts::generate(&["localhost".into()], "client").unwrap();
        let dir = tempfile::tempdir().unwrap();
        certs.write_to(dir.path()).unwrap();
        let config = logferry_shared::tls::server_config(
            &dir.path().join("server.pem"),
            &dir.path().join("server-key.pem"),
            None,
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, done) = oneshot::channel();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut rec = Received::default();
            let upgraded = session(stream, tls, false, &mut rec).await;
            if let Some(stream) = upgraded {
                if let Ok(tls_stream) = acceptor.accept(stream).await {
                    session(tls_stream, false, true, &mut rec).await;
                }
            }
            let _ = tx.send(rec);
        });
        Server {
            port,
            ca_pem: certs.ca_cert,
            done,
        }
    }

    /// Waits for the session to end.
    pub async fn received(self) -> Received {
        tokio::time::timeout(std::time::Duration::from_secs(20), self.done)
            .await
            .unwrap()
            .unwrap()
    }

    /// True when the session ended without a message.
    pub async fn received_nothing(self) -> bool {
        let r = self.received().await;
        r.mail_from.is_empty() && r.data.is_empty()
    }
}

/// Serves commands until QUIT or the end (None), or STARTTLS (Some: the stream to
/// upgrade).
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    offer_tls: bool,
    in_tls: bool,
    rec: &mut Received,
) -> Option<S> {
    let mut s = BufReader::new(stream);
    if !in_tls {
        s.write_all(b"220 localhost ESMTP test\r\n").await.ok()?;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let cmd = line.trim_end().to_owned();
        let upper = cmd.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            if in_tls {
                b"250-localhost\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
            } else if offer_tls {
                b"250-localhost\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
            } else {
                b"250-localhost\r\n250 8BITMIME\r\n"
            }
        } else if upper == "STARTTLS" && offer_tls {
            s.write_all(b"220 go ahead\r\n").await.ok()?;
            return Some(s.into_inner());
        } else if let Some(arg) = upper.strip_prefix("AUTH PLAIN") {
            let arg = cmd[cmd.len() - arg.len()..].trim().to_owned();
            let arg = if arg.is_empty() {
                s.write_all(b"334 \r\n").await.ok()?;
                line.clear();
                s.read_line(&mut line).await.ok()?;
                line.trim().to_owned()
            } else {
                arg
            };
            let raw = base64_decode(&arg);
            let parts: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            if parts.len() == 3 {
                rec.auth = Some((
                    String::from_utf8_lossy(parts[1]).into_owned(),
                    String::from_utf8_lossy(parts[2]).into_owned(),
                ));
                rec.tls_before_auth = in_tls;
            }
            b"235 ok\r\n"
        } else if upper == "AUTH LOGIN" {
            s.write_all(b"334 VXNlcm5hbWU6\r\n").await.ok()?;
            line.clear();
            s.read_line(&mut line).await.ok()?;
            let user = String::from_utf8_lossy(&base64_decode(line.trim())).into_owned();
            s.write_all(b"334 UGFzc3dvcmQ6\r\n").await.ok()?;
            line.clear();
            s.read_line(&mut line).await.ok()?;
            let pass = String::from_utf8_lossy(&base64_decode(line.trim())).into_owned();
            rec.auth = Some((user, pass));
            rec.tls_before_auth = in_tls;
            b"235 ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            rec.mail_from = address(&cmd);
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            rec.rcpt_to.push(address(&cmd));
            b"250 ok\r\n"
        } else if upper == "DATA" {
            s.write_all(b"354 go on\r\n").await.ok()?;
            loop {
                line.clear();
                if s.read_line(&mut line).await.ok()? == 0 {
                    return None;
                }
                if line == ".\r\n" {
                    break;
                }
                rec.data.push_str(&line);
            }
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            let _ = s.write_all(b"221 bye\r\n").await;
            return None;
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 ok\r\n"
        } else {
            b"502 not implemented\r\n"
        };
        s.write_all(reply).await.ok()?;
    }
}

fn address(cmd: &str) -> String {
    let start = cmd.find('<').map_or(0, |i| i + 1);
    let end = cmd.find('>').unwrap_or(cmd.len());
    cmd[start..end].to_owned()
}

fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}
