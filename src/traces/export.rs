//! The exporter: takes finished spans from the queue, batches them (`OTEL_BSP_*`) and sends
//! each batch to the collector over HTTP/protobuf or gRPC, retrying what can be retried for
//! a bounded time; at shutdown, sends what is queued. A failing collector is logged when it
//! starts failing and when it is back, not at every batch.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout_at};

use super::settings::{Compression, Protocol, Settings};
use super::{Shared, SpanRecord, otlp};

/// Why spans could not be exported (or the exporter not set up).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The TLS settings for an `https` collector cannot be used.
    #[error("traces: TLS: {0}")]
    Tls(String),
    /// The collector could not be reached or the exchange broke.
    #[error("the collector could not be reached: {0}")]
    Unreachable(String),
    /// The collector answered with an HTTP error.
    #[error("the collector answered {0}")]
    Status(StatusCode),
    /// The collector answered with a gRPC error.
    #[error("the collector answered gRPC status {code}{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Grpc {
        /// The gRPC status code.
        code: u32,
        /// Its message, decoded.
        message: String,
    },
    /// No answer within the export timeout.
    #[error("the collector did not answer within {}s", .0.as_secs_f32())]
    Timeout(Duration),
}

impl ExportError {
    /// Whether sending the same batch again may succeed (OTLP's retryable answers).
    fn retryable(&self) -> bool {
        match self {
            ExportError::Tls(_) => false,
            ExportError::Unreachable(_) | ExportError::Timeout(_) => true,
            ExportError::Status(status) => matches!(status.as_u16(), 429 | 502 | 503 | 504),
            // CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS.
            ExportError::Grpc { code, .. } => matches!(code, 1 | 4 | 10 | 11 | 14 | 15),
        }
    }
}

/// The background task that sends spans; flush it with [`Exporter::shutdown`].
#[derive(Debug)]
pub struct Exporter {
    /// Tells the task to send what is queued and stop.
    stop: watch::Sender<bool>,
    /// The task.
    task: tokio::task::JoinHandle<()>,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// What the task sends with.
struct Sender {
    /// Where and how.
    settings: Settings,
    /// HTTP/1.1 or HTTP/2 by ALPN (HTTP/protobuf); HTTP/2 only (gRPC).
    client: HttpsClient,
    /// The queue of finished spans, and the drop counter.
    shared: Arc<Shared>,
    /// Whether the last export failed (to log changes, not every batch).
    failing: bool,
    /// Drops already reported.
    dropped: u64,
}

impl Exporter {
    /// Starts the task on the current runtime.
    pub(super) fn start(settings: Settings, shared: Arc<Shared>) -> Result<Exporter, ExportError> {
        let roots =
            crate::model::root_store(settings.certificate.as_deref()).map_err(ExportError::Tls)?;
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| ExportError::Tls(error.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .http2_only(settings.protocol == Protocol::Grpc)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        tracing::info!(
            endpoint = %settings.shown_endpoint(),
            protocol = %settings.protocol,
            sampler = %settings.sampler,
            "traces: on"
        );
        let (stop, stopped) = watch::channel(false);
        let sender = Sender {
            settings,
            client,
            shared,
            failing: false,
            dropped: 0,
        };
        let task = tokio::spawn(sender.run(stopped));
        Ok(Exporter { stop, task })
    }

    /// Sends what is queued (within `within`) and stops.
    pub async fn shutdown(self, within: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(within, &mut task).await.is_err() {
            task.abort();
            tracing::warn!("traces: not all spans were sent before shutdown");
        }
    }
}

impl Sender {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let size = self.settings.batch.size;
        loop {
            // A full batch, the delay, or the end.
            let stopping = tokio::select! {
                () = self.shared.ready.notified() => false,
                () = sleep(self.settings.batch.delay) => false,
                _ = stop.wait_for(|stop| *stop) => true,
            };
            // What is queued, a batch at a time (at shutdown: all of it).
            loop {
                let mut batch = self.shared.take(size);
                let full = batch.len() == size;
                self.export(&mut batch).await;
                if !full {
                    break;
                }
            }
            if stopping {
                break;
            }
        }
    }

    /// Sends `batch` (emptied), retrying within `OTEL_BSP_EXPORT_TIMEOUT`.
    async fn export(&mut self, batch: &mut Vec<SpanRecord>) {
        self.report_drops();
        if batch.is_empty() {
            return;
        }
        let count = batch.len();
        let message = otlp::export_request(&self.settings.resource, batch);
        batch.clear();
        let gzip = self.settings.compression == Compression::Gzip;
        let message = if gzip { otlp::gzip(&message) } else { message };
        let body = Bytes::from(match self.settings.protocol {
            Protocol::Grpc => otlp::grpc_frame(&message, gzip),
            Protocol::HttpProtobuf => message,
        });
        let deadline = Instant::now() + self.settings.batch.timeout;
        let mut pause = Duration::from_millis(100);
        let outcome = loop {
            let attempt = (Instant::now() + self.settings.timeout).min(deadline);
            let result = match timeout_at(attempt, self.send(body.clone())).await {
                Ok(result) => result,
                Err(_) => Err(ExportError::Timeout(self.settings.timeout)),
            };
            match result {
                Err(error) if error.retryable() && Instant::now() + pause < deadline => {
                    tracing::debug!(%error, "traces: export failed; trying again");
                    sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                other => break other,
            }
        };
        match outcome {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!(endpoint = %self.settings.shown_endpoint(), "traces: the collector takes spans again");
            }
            Ok(()) => {}
            Err(error) if !self.failing => {
                self.shared.lost.fetch_add(count as u64, Ordering::Relaxed);
                self.failing = true;
                tracing::warn!(
                    endpoint = %self.settings.shown_endpoint(),
                    %error,
                    spans = count,
                    "traces: spans not exported (later failures are logged at debug level)"
                );
            }
            Err(error) => {
                self.shared.lost.fetch_add(count as u64, Ordering::Relaxed);
                tracing::debug!(%error, spans = count, "traces: spans not exported")
            }
        }
    }

    /// Logs the spans dropped since the last report (a full queue).
    fn report_drops(&mut self) {
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        if dropped > self.dropped {
            tracing::warn!(
                dropped = dropped - self.dropped,
                "traces: spans dropped: the queue (OTEL_BSP_MAX_QUEUE_SIZE) was full"
            );
            self.dropped = dropped;
        }
    }

    /// One export request and its answer.
    async fn send(&self, body: Bytes) -> Result<(), ExportError> {
        let grpc = self.settings.protocol == Protocol::Grpc;
        let mut request = Request::post(self.settings.endpoint.clone())
            .header(
                http::header::CONTENT_TYPE,
                if grpc {
                    "application/grpc"
                } else {
                    "application/x-protobuf"
                },
            )
            .header(
                http::header::USER_AGENT,
                concat!("paastis/", env!("CARGO_PKG_VERSION")),
            );
        if grpc {
            request = request.header(http::header::TE, "trailers");
        }
        if self.settings.compression == Compression::Gzip {
            request = if grpc {
                request.header("grpc-encoding", "gzip")
            } else {
                request.header(http::header::CONTENT_ENCODING, "gzip")
            };
        }
        let mut request = request
            .body(Full::new(body))
            .map_err(|error| ExportError::Unreachable(error.to_string()))?;
        for (name, value) in &self.settings.headers {
            // Checked when the settings were read.
            if let Ok(value) = HeaderValue::from_str(value.expose()) {
                request.headers_mut().insert(name.clone(), value);
            }
        }
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| ExportError::Unreachable(crate::model::error_chain(&error)))?;
        let status = response.status();
        let head_status = grpc_status(response.headers());
        let collected = response
            .into_body()
            .collect()
            .await
            .map_err(|error| ExportError::Unreachable(error.to_string()))?;
        if !status.is_success() {
            return Err(ExportError::Status(status));
        }
        if !grpc {
            return Ok(());
        }
        // Trailers-only answers carry the status in the head; others in the trailers.
        let status = head_status.or_else(|| collected.trailers().and_then(grpc_status));
        match status {
            Some((0, _)) => Ok(()),
            Some((code, message)) => Err(ExportError::Grpc { code, message }),
            None => Err(ExportError::Unreachable(
                "the answer has no grpc-status".to_owned(),
            )),
        }
    }
}

/// `grpc-status` and `grpc-message` (percent-decoded, bounded) from a head or trailers.
fn grpc_status(fields: &http::HeaderMap) -> Option<(u32, String)> {
    let code = fields.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = fields
        .get("grpc-message")
        .map(|value| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let decoded = super::settings::percent_decoded(&text).unwrap_or_else(|| text.into());
            decoded.chars().take(200).collect()
        })
        .unwrap_or_default();
    Some((code, message))
}
