//! TLS on rustls with the `ring` provider: PEM loading, server and client configs, optional
//! client certificates (mTLS), and development certificates made with rcgen.
//!
//! Every config is built with an explicit provider, so nothing depends on a process-wide
//! default and binaries that link several providers still behave the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A TLS setup problem, naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the material (e.g. key does not match certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// Building a client-certificate verifier failed.
    #[error("client CA: {0}")]
    Verifier(String),
    /// Generating certificates failed.
    #[error("certificate generation: {0}")]
    Generate(String),
}

/// The crypto provider every config uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads every certificate in a PEM file; an empty file is an error.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |message: String| TlsError::Pem {
        path: path.to_owned(),
        message,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("no PEM certificate found".into()));
    }
    Ok(certs)
}

/// Loads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        message: format!("no usable private key: {e}"),
    })
}

/// Server config for `cert`/`key`; with `client_ca`, every client must present a
/// certificate signed by it (mTLS). ALPN offers HTTP/2 and HTTP/1.1.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let certs = load_certs(cert)?;
    let key = load_key(key)?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let roots = root_store(ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Client config trusting `ca` (or the system's roots when `None`), presenting
/// `identity` (certificate, key) when given.
pub fn client_config(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let roots = match ca {
        Some(ca) => root_store(ca)?,
        None => {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A single unparsable system certificate should not stop the agent.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(TlsError::Pem {
                    path: PathBuf::from("(system trust store)"),
                    message: "no CA certificates found; set output.tls.ca".into(),
                });
            }
            roots
        }
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn root_store(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: ca.to_owned(),
            message: format!("unusable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// PEM texts of a development CA and the server and client certificates it signed.
#[derive(Debug, Clone)]
pub struct DevCerts {
    /// CA certificate.
    pub ca_cert: String,
    /// Server certificate.
    pub server_cert: String,
    /// Server private key.
    pub server_key: String,
    /// Client certificate (for mTLS).
    pub client_cert: String,
    /// Client private key.
    pub client_key: String,
}

/// File names [`DevCerts::write_to`] uses.
pub const DEV_CERT_FILES: [&str; 5] = [
    "ca.pem",
    "server.pem",
    "server-key.pem",
    "client.pem",
    "client-key.pem",
];

impl DevCerts {
    /// Generates a CA, a server certificate for `sans` (DNS names or IP addresses) and a
    /// client certificate named `client_name`. The CA key is not kept: these are for
    /// development and tests, and a new set is made whenever one is needed.
    pub fn generate(sans: &[String], client_name: &str) -> Result<DevCerts, TlsError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let g = |e: rcgen::Error| TlsError::Generate(e.to_string());
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(g)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Logferry development CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(g)?;
        let ca = ca_params.self_signed(&ca_key).map_err(g)?;

        let mut server = CertificateParams::new(sans.to_vec()).map_err(g)?;
        server
            .distinguished_name
            .push(DnType::CommonName, "logferry-aggregator");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let server_key = KeyPair::generate().map_err(g)?;
        let server_cert = server.signed_by(&server_key, &ca, &ca_key).map_err(g)?;

        let mut client = CertificateParams::new(Vec::<String>::new()).map_err(g)?;
        client
            .distinguished_name
            .push(DnType::CommonName, client_name);
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let client_key = KeyPair::generate().map_err(g)?;
        let client_cert = client.signed_by(&client_key, &ca, &ca_key).map_err(g)?;

        Ok(DevCerts {
            ca_cert: ca.pem(),
            server_cert: server_cert.pem(),
            server_key: server_key.serialize_pem(),
            client_cert: client_cert.pem(),
            client_key: client_key.serialize_pem(),
        })
    }

    /// Writes the five PEM files ([`DEV_CERT_FILES`]) into `dir`, creating it; key files
    /// get mode 0600.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let contents = [
            &self.ca_cert,
            &self.server_cert,
            &self.server_key,
            &self.client_cert,
            &self.client_key,
        ];
        for (name, text) in DEV_CERT_FILES.iter().zip(contents) {
            let secret = name.ends_with("-key.pem");
            write_file(&dir.join(name), text.as_bytes(), secret)?;
        }
        Ok(())
    }
}

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certs_load_into_server_and_client_configs() {
        let dir = tempfile::tempdir().unwrap();
        let certs = DevCerts::generate(&["localhost".into(), "127.0.0.1".into()], "agent").unwrap();
        certs.write_to(dir.path()).unwrap();
        let p = |n: &str| dir.path().join(n);
        server_config(&p("server.pem"), &p("server-key.pem"), None).unwrap();
        server_config(&p("server.pem"), &p("server-key.pem"), Some(&p("ca.pem"))).unwrap();
        client_config(Some(&p("ca.pem")), None).unwrap();
        client_config(
            Some(&p("ca.pem")),
            Some((&p("client.pem"), &p("client-key.pem"))),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(p("server-key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn bad_pem_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("bogus.pem");
        std::fs::write(&bogus, "not a pem").unwrap();
        let err = load_certs(&bogus).unwrap_err().to_string();
        assert!(err.contains("bogus.pem"), "{err}");
        let err = load_key(&bogus).unwrap_err().to_string();
        assert!(err.contains("bogus.pem"), "{err}");
        let missing = dir.path().join("missing.pem");
        assert!(load_certs(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.pem"));
    }

    #[test]
    fn mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        DevCerts::generate(&["localhost".into()], "a")
            .unwrap()
            .write_to(dir.path())
            .unwrap();
        let p = |n: &str| dir.path().join(n);
        assert!(server_config(&p("server.pem"), &p("client-key.pem"), None).is_err());
    }
}
