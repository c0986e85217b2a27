//! TLS client settings for `https` upstreams: the webpki roots and an optional extra CA
//! file, one connector per ALPN offer. Connections are opened in `pool`, not here.

use std::sync::Arc;

use tokio_rustls::TlsConnector;

/// Why the upstream TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("upstream TLS: {0}")]
pub struct TlsError(String);

/// TLS client settings for upstreams, one per ALPN offer.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Offers `h2` then `http/1.1`: ordinary requests.
    pub(super) any: TlsConnector,
    /// Offers `http/1.1` only: upgrades (WebSockets), which need an HTTP/1.1 connection.
    pub(super) http1: TlsConnector,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").finish_non_exhaustive()
    }
}

/// TLS client settings for upstreams: the webpki roots, plus the certificates of
/// `extra_ca_file` (PEM) when given.
pub fn upstream_tls(extra_ca_file: Option<&std::path::Path>) -> Result<UpstreamTls, TlsError> {
    let roots = crate::model::root_store(extra_ca_file).map_err(TlsError)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http1 = config.clone();
    http1.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(UpstreamTls {
        any: TlsConnector::from(Arc::new(config)),
        http1: TlsConnector::from(Arc::new(http1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_ca_files_are_checked() {
        assert!(upstream_tls(None).is_ok());
        let missing = upstream_tls(Some(std::path::Path::new("/nonexistent/ca.pem")));
        assert!(missing.is_err_and(|e| e.to_string().contains("/nonexistent/ca.pem")));
        let empty = std::env::temp_dir().join(format!("paastis-empty-ca-{}", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let result = upstream_tls(Some(&empty));
        let _ = std::fs::remove_file(&empty);
        assert!(result.is_err_and(|e| e.to_string().contains("holds no certificate")));
    }
}
