//! How a request reached the engine, as the listener that accepted it saw it.

/// Set by the proxy on a request it hands to the admin router (`admin.host`): `true` when
/// the client reached the engine over HTTPS (the TLS listener, or a trusted proxy's
/// `X-Forwarded-Proto: https`). A request extension, never a header, so a client cannot
/// claim it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Https(pub bool);

/// The address of the peer a request came from, set by the listener that accepted it (the
/// proxy's, on a request it hands to the admin router). A request extension, never a
/// header, so a client cannot claim it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

/// The certificates trusted for the engine's TLS clients (`https` upstreams, a traces
/// collector): the webpki roots, plus those of `extra_ca_file` (PEM) when given. Err: what
/// is wrong with the file, naming it.
pub fn root_store(
    extra_ca_file: Option<&std::path::Path>,
) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca_file {
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let mut added = 0;
        for certificate in certificates {
            let certificate =
                certificate.map_err(|error| format!("{}: {error}", path.display()))?;
            roots
                .add(certificate)
                .map_err(|error| format!("{}: {error}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("{} holds no certificate", path.display()));
        }
    }
    Ok(roots)
}
