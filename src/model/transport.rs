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
