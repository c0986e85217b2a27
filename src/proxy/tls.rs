//! The HTTPS listener's certificate: read from PEM files at start, read again on demand
//! (SIGHUP) and swapped in without dropping a connection. Offers HTTP/2 and HTTP/1.1 by
//! ALPN. A reload that fails keeps the certificate in use. Errors name the files, never
//! their contents.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("tls: {0}")]
pub struct ServerTlsError(String);

/// The listener's TLS settings, swappable while it serves.
pub struct ServerTls {
    /// The certificate chain file, read again on reload.
    cert: PathBuf,
    /// The private key file, read again on reload.
    key: PathBuf,
    /// What new connections are accepted with; replaced whole by a reload.
    acceptor: ArcSwap<TlsAcceptor>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads `cert` and `key` (PEM).
    pub fn load(cert: &Path, key: &Path) -> Result<ServerTls, ServerTlsError> {
        let acceptor = acceptor(cert, key)?;
        Ok(ServerTls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            acceptor: ArcSwap::from_pointee(acceptor),
        })
    }

    /// Reads the files again; on success new connections get the new certificate, on
    /// failure nothing changes.
    pub fn reload(&self) -> Result<(), ServerTlsError> {
        let acceptor = acceptor(&self.cert, &self.key)?;
        self.acceptor.store(Arc::new(acceptor));
        Ok(())
    }

    /// The settings for the next connection.
    pub fn acceptor(&self) -> Arc<TlsAcceptor> {
        self.acceptor.load_full()
    }
}

fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServerTlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|error| ServerTlsError(format!("cannot read {}: {error}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|error| ServerTlsError(format!("{}: {error}", cert.display())))?;
    if chain.is_empty() {
        return Err(ServerTlsError(format!(
            "{} holds no certificate",
            cert.display()
        )));
    }
    // The key's parse error says what kind of PEM section was wrong, never its bytes.
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|error| {
        ServerTlsError(format!(
            "{}: no usable private key ({error})",
            key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ServerTlsError(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|error| {
            ServerTlsError(format!(
                "{} and {} do not make a usable pair: {error}",
                cert.display(),
                key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/support/tls")
            .join(name)
    }

    #[test]
    fn loads_pairs_and_names_the_files_in_errors() {
        assert!(ServerTls::load(&fixture("localhost.pem"), &fixture("localhost.key")).is_ok());
        let missing = ServerTls::load(Path::new("/nonexistent/cert.pem"), &fixture("other.key"));
        assert!(missing.is_err_and(|e| e.to_string().contains("/nonexistent/cert.pem")));
        // A key that does not match its certificate.
        let mismatched = ServerTls::load(&fixture("localhost.pem"), &fixture("other.key"));
        assert!(mismatched.is_err_and(|e| e.to_string().contains("usable pair")));
        // A certificate given as the key: refused, and nothing of the file is echoed.
        let wrong = ServerTls::load(&fixture("localhost.pem"), &fixture("localhost.pem"));
        let message = wrong
            .map(|_| ())
            .expect_err("a certificate is no key")
            .to_string();
        assert!(message.contains("no usable private key"), "{message}");
        assert!(!message.contains("BEGIN"), "{message}");
    }

    #[test]
    fn a_failed_reload_keeps_the_certificate_in_use() {
        let dir = std::env::temp_dir().join(format!("paastis-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::copy(fixture("localhost.pem"), &cert).expect("copy");
        std::fs::copy(fixture("localhost.key"), &key).expect("copy");
        let tls = ServerTls::load(&cert, &key).expect("loads");
        let before = tls.acceptor();
        std::fs::write(&key, "garbage\n").expect("write");
        assert!(tls.reload().is_err());
        assert!(Arc::ptr_eq(&before, &tls.acceptor()));
        std::fs::copy(fixture("other.pem"), &cert).expect("copy");
        std::fs::copy(fixture("other.key"), &key).expect("copy");
        tls.reload().expect("reloads");
        assert!(!Arc::ptr_eq(&before, &tls.acceptor()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
