//! Upgrades (WebSocket and the like): an upgrade request goes on an HTTP/1.1 connection of
//! its own, and a 101 answer joins both sides in a [`Tunnel`] that copies bytes both ways.

use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::error::exchange_failed;
use super::pool::Connection;
use super::{ClientSide, ForwardError, Forwarder, UpstreamScope};
use crate::lifecycle::InFlight;
use crate::model::Upstream;
use crate::proxy::body::RequestBody;

impl Forwarder {
    /// Sends an upgrade request (WebSocket and the like) on a connection of its own. A 101
    /// answer comes with the [`Tunnel`] that joins both sides once the caller has answered
    /// the client; any other answer is a plain response.
    pub async fn forward_upgrade(
        &self,
        mut request: Request<RequestBody>,
        upstream: &Upstream,
        client: &ClientSide,
        scope: UpstreamScope,
    ) -> Result<(Response<Incoming>, Option<Tunnel>), ForwardError> {
        let client_side = hyper::upgrade::on(&mut request);
        let protocol = request.headers().get(header::UPGRADE).cloned();
        let (mut request, client_host, outcome) = self.prepare(request, upstream, client);
        if let Some(protocol) = protocol {
            let headers = request.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol);
        }
        let Connection::Http1(mut sender) =
            Box::pin(self.connect_with(upstream, true, false, scope, None)).await?
        else {
            return Err(ForwardError::Connect(format!(
                "{}: HTTP/2 chosen for an upgrade",
                upstream.authority
            )));
        };
        let mut response = self
            .response_header(sender.send_request(request))
            .await?
            .map_err(|error| exchange_failed(&error, &outcome))?;
        let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        let protocol = response.headers().get(header::UPGRADE).cloned();
        self.clean_response(&mut response, upstream, client_host.as_ref());
        let headers = response.headers_mut();
        if !switching {
            return Ok((response, None));
        }
        if let Some(protocol) = protocol {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol);
        }
        let upstream_side = hyper::upgrade::on(&mut response);
        Ok((
            response,
            Some(Tunnel {
                client: client_side,
                upstream: upstream_side,
            }),
        ))
    }
}

/// Both halves of an upgraded exchange, joined once the client has its 101.
#[derive(Debug)]
pub struct Tunnel {
    /// The client's connection, once hyper hands it over.
    client: hyper::upgrade::OnUpgrade,
    /// The upstream's connection, likewise.
    upstream: hyper::upgrade::OnUpgrade,
}

/// Bytes of each of a tunnel's two copy buffers.
const TUNNEL_BUFFER: usize = 2048;

impl Tunnel {
    /// Copies bytes both ways until either side closes. `in_flight` keeps the app from being
    /// stopped under the open connection; dropped at the end, it counts as activity.
    pub async fn run(self, in_flight: InFlight) {
        let (client, upstream) = tokio::join!(self.client, self.upstream);
        match (client, upstream) {
            (Ok(client), Ok(upstream)) => {
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                // Small copy buffers: an open tunnel mostly waits (a WebSocket), and its
                // memory is what thousands of them cost; bulk data only takes more reads.
                if let Err(error) = tokio::io::copy_bidirectional_with_sizes(
                    &mut client,
                    &mut upstream,
                    TUNNEL_BUFFER,
                    TUNNEL_BUFFER,
                )
                .await
                {
                    tracing::debug!(%error, "upgraded connection ended with an error");
                }
            }
            (client, upstream) => {
                tracing::debug!(
                    client_ok = client.is_ok(),
                    upstream_ok = upstream.is_ok(),
                    "upgrade did not complete"
                );
            }
        }
        drop(in_flight);
    }
}
