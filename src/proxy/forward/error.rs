//! Why forwarding failed: [`ForwardError`], its short public reason (what a visitor is
//! told, never an address nor a server's words), and how a failed exchange is told apart
//! (the client's body, or the upstream).

use std::time::Duration;

use crate::proxy::body::{BodyOutcome, ClientBodyError};

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No connection could be made to the upstream.
    #[error("cannot connect to the upstream: {0}")]
    Connect(String),
    /// Nothing listens at the upstream's address (refused or reset at once): an app just
    /// woken may not listen yet, so retrying can help.
    #[error("nothing listens at the upstream's address: {0}")]
    NotListening(String),
    /// Just after a wake, the upstream did not answer a connection within the short time
    /// given to it (its listen backlog may be full): a new attempt can help.
    #[error("the upstream did not answer the connection: {0}")]
    Unanswered(String),
    /// The upstream resolves only to addresses its space may not reach.
    #[error("{0} resolves only to internal addresses, which this space may not reach")]
    Internal(String),
    /// The upstream's TLS handshake failed (its certificate was refused, ...).
    #[error("the upstream's TLS handshake failed: {0}")]
    Tls(String),
    /// The connection was made but the exchange failed (reset, bad response, ...).
    #[error("the upstream failed: {0}")]
    Exchange(String),
    /// The upstream took too long to answer.
    #[error("the upstream sent no response within {}s", .0.as_secs())]
    Timeout(Duration),
    /// The client's request body failed (malformed, or too slow): the client's fault.
    #[error("{0}")]
    ClientBody(ClientBodyError),
}

impl ForwardError {
    /// What a visitor is told: the kind of failure, never an address nor a server's words.
    pub fn public(&self) -> &'static str {
        match self {
            ForwardError::Connect(_) | ForwardError::Unanswered(_) => {
                "no connection could be made to it"
            }
            ForwardError::NotListening(_) => "it is not listening",
            ForwardError::Tls(_) => "its TLS certificate or handshake was refused",
            ForwardError::Internal(_) => "its address is not one this space may reach",
            ForwardError::Exchange(_) => "its server failed to answer",
            ForwardError::Timeout(_) => "it sent no response in time",
            ForwardError::ClientBody(ClientBodyError::Malformed) => {
                "the request body is malformed or was cut short"
            }
            ForwardError::ClientBody(ClientBodyError::TooSlow) => {
                "the request body was sent too slowly"
            }
        }
    }
}

/// A failed exchange: the client's fault when its body failed, else the upstream's.
pub(super) fn exchange_failed(error: &hyper::Error, outcome: &BodyOutcome) -> ForwardError {
    match outcome.failure() {
        Some(failure) => ForwardError::ClientBody(failure),
        None => ForwardError::Exchange(error_chain(error)),
    }
}

/// The error and its causes, in one line (hyper's top-level message alone says little).
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    crate::model::error_chain(error)
}
