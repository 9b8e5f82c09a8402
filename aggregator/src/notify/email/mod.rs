//! Email over SMTP (lettre): one plain-text message per notification to every recipient.
//!
//! The connection is upgraded with STARTTLS and refused if the server cannot (default),
//! or TLS from the start (`security = "tls"`), or plain (`security = "none"`, only for a
//! relay on the same host). The password is read once at start and never logged.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::{NotifierConfig, SecretRef, SmtpSecurity};
use super::{text, title, Notifier, SendError, SendFuture};
use crate::rules::Notification;

/// An SMTP notifier.
pub struct Email {
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: String,
}

impl Email {
    /// From `[notifiers.NAME] type = "email"`.
    pub fn new(name: &str, cfg: &NotifierConfig) -> Result<Email, String> {
        let NotifierConfig::Email {
            smtp_host,
            smtp_port,
            security,
            ca,
            username,
            password,
            password_env,
            password_file,
            from,
            to,
            subject_prefix,
            timeout,
        } = cfg
        else {
            return Err("not an email notifier".into());
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp_host)
            .port(*smtp_port)
            .timeout(Some(*timeout));
        if *security != SmtpSecurity::None {
            let mut params = TlsParameters::builder(smtp_host.clone());
            if let Some(path) = ca {
                let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let cert =
                    Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| format!("TLS setup: {e}"))?;
            builder = builder.tls(match security {
                SmtpSecurity::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if let Some(user) = username {
            let pw = SecretRef {
                value: password.clone(),
                env: password_env.clone(),
                file: password_file.clone(),
            }
            .read()?
            .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), pw.trim_end().to_owned()));
        }
        let from: Mailbox = from.parse().map_err(|e| format!("from: {e}"))?;
        let mut rcpt = Vec::new();
        for (i, t) in to.iter().enumerate() {
            rcpt.push(t.parse::<Mailbox>().map_err(|e| format!("to[{i}]: {e}"))?);
        }
        Ok(Email {
            name: name.to_owned(),
            transport: builder.build(),
            from,
            to: rcpt,
            subject_prefix: subject_prefix.clone(),
        })
    }

    /// The message for `n`.
    pub fn message(&self, n: &Notification) -> Result<Message, SendError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(
                format!("{} {}", self.subject_prefix, title(n))
                    .trim()
                    .to_owned(),
            )
            .header(ContentType::TEXT_PLAIN);
        for t in &self.to {
            b = b.to(t.clone());
        }
        b.body(text(n))
            .map_err(|e| SendError::permanent(format!("email: cannot build the message: {e}")))
    }
}

impl Notifier for Email {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let msg = self.message(n)?;
            match self.transport.send(msg).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(SendError::permanent(format!("email: {e}"))),
                Err(e) => Err(SendError::retry(format!("email: {e}"))),
            }
        })
    }
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
