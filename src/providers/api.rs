//! What every platform client shares: one HTTP client, a rate limiter per account, retries
//! with jittered backoff, and the mapping of HTTP failures to [`ProviderError`]s.
//!
//! Retries: a 429 is retried (waiting at least its `Retry-After`) whatever the call, since
//! the platform did not act on it; 5xx answers, timeouts and connection failures are retried
//! only for idempotent calls. This module knows nothing of any platform's JSON.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::time::{Instant, sleep};

use super::ProviderError;

/// Tries of one call, the first included.
const ATTEMPTS: u32 = 4;

/// First backoff; doubles on each retry (with jitter), up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(200);

/// Longest backoff between two tries.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Longest `Retry-After` honoured within one call; beyond it the call fails as rate limited.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);

/// Longest body excerpt kept in an error message.
const ERROR_EXCERPT: usize = 200;

/// At most `limit` calls in any rolling `window`; callers beyond it wait their turn.
#[derive(Debug)]
pub struct RateLimiter {
    /// Calls allowed per window.
    limit: usize,
    /// The window.
    window: Duration,
    /// When the calls of the current window were sent, oldest first.
    sent: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    /// A limiter allowing `limit` calls per `window`.
    pub fn new(limit: usize, window: Duration) -> RateLimiter {
        RateLimiter {
            limit: limit.max(1),
            window,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// The limit and the calls counted in the current window.
    pub fn usage(&self) -> (usize, usize) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        self.forget_old(&mut sent, Instant::now());
        (self.limit, sent.len())
    }

    /// Drops the calls that left the window.
    fn forget_old(&self, sent: &mut VecDeque<Instant>, now: Instant) {
        while sent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.window)
        {
            sent.pop_front();
        }
    }

    /// Waits until one more call fits in the window, and counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                self.forget_old(&mut sent, now);
                if sent.len() < self.limit {
                    sent.push_back(now);
                    return;
                }
                match sent.front() {
                    Some(oldest) => self.window.saturating_sub(now.duration_since(*oldest)),
                    None => Duration::ZERO,
                }
            };
            sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

/// Whether a call may be sent twice without harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotent {
    /// Reads, and writes that set an absolute value.
    Yes,
    /// Writes that act each time they are sent.
    No,
}

/// HTTP client of one provider account.
#[derive(Debug)]
pub struct ApiClient {
    /// Connection pool (rustls).
    http: reqwest::Client,
    /// The account's rate limit.
    limiter: RateLimiter,
}

impl ApiClient {
    /// The account's limit per minute and the calls made in the last minute.
    pub fn rate_limit(&self) -> (usize, usize) {
        self.limiter.usage()
    }

    /// A client sending at most `per_minute` calls a minute.
    pub fn new(per_minute: usize) -> Result<ApiClient, ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("paastis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                ProviderError::Failed(format!("cannot build the HTTP client: {error}"))
            })?;
        Ok(ApiClient {
            http,
            limiter: RateLimiter::new(per_minute, Duration::from_secs(60)),
        })
    }

    /// A client on an `http` client the platform's file built itself (a unix socket, a
    /// client certificate), sending at most `per_minute` calls a minute.
    pub fn with_http(http: reqwest::Client, per_minute: usize) -> ApiClient {
        ApiClient {
            http,
            limiter: RateLimiter::new(per_minute, Duration::from_secs(60)),
        }
    }

    /// The underlying client, to build requests with.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends the request built by `build` (called again for each try), retrying as the module
    /// doc says. Returns any response that is not a 429 or a retried 5xx; the caller maps
    /// its status with [`check`].
    pub async fn send(
        &self,
        idempotent: Idempotent,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, ProviderError> {
        let mut backoff = BACKOFF_FIRST;
        for attempt in 1..=ATTEMPTS {
            let last = attempt == ATTEMPTS;
            self.limiter.acquire().await;
            match build().send().await {
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    let retry_after = retry_after(&response);
                    if last || retry_after.is_some_and(|d| d > RETRY_AFTER_MAX) {
                        return Err(ProviderError::RateLimited { retry_after });
                    }
                    // Without a Retry-After, at least a second: the window has to move.
                    let wait = retry_after.unwrap_or(Duration::from_secs(1));
                    sleep(wait.max(jitter(backoff))).await;
                }
                Ok(response)
                    if response.status().is_server_error()
                        && idempotent == Idempotent::Yes
                        && !last =>
                {
                    sleep(jitter(backoff)).await;
                }
                Ok(response) => return Ok(response),
                Err(error)
                    if (error.is_timeout() || error.is_connect())
                        && idempotent == Idempotent::Yes
                        && !last =>
                {
                    sleep(jitter(backoff)).await;
                }
                Err(error) => return Err(ProviderError::Unreachable(describe(&error))),
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        Err(ProviderError::Failed("no answer after retries".to_owned()))
    }
}

/// Maps a non-success response to an error (with an excerpt of its body); success passes.
pub async fn check(response: Response, what: &str) -> Result<Response, ProviderError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = retry_after(&response);
    let body = response.text().await.unwrap_or_default();
    let excerpt: String = body.chars().take(ERROR_EXCERPT).collect();
    let detail = format!("{what}: HTTP {} {}", status.as_u16(), excerpt.trim());
    Err(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ProviderError::Unauthorized(detail),
        StatusCode::NOT_FOUND => ProviderError::NotFound(what.to_owned()),
        StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited { retry_after },
        status if status.is_server_error() => ProviderError::Failed(detail),
        _ => ProviderError::Rejected(detail),
    })
}

/// The JSON body of a successful response.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    response: Response,
    what: &str,
) -> Result<T, ProviderError> {
    response
        .json()
        .await
        .map_err(|error| ProviderError::Failed(format!("{what}: unexpected answer: {error}")))
}

/// The body of a successful response, whole (for a listing parsed in place: its entries
/// borrowed from it rather than copied).
pub async fn read_body(response: Response, what: &str) -> Result<bytes::Bytes, ProviderError> {
    response
        .bytes()
        .await
        .map_err(|error| ProviderError::Failed(format!("{what}: unexpected answer: {error}")))
}

/// A response body as [`read_json`] reads it, from its bytes (a listing read with
/// [`read_body`], and the fuzz targets).
pub(crate) fn body_json<'a, T: serde::Deserialize<'a>>(
    body: &'a [u8],
    what: &str,
) -> Result<T, ProviderError> {
    serde_json::from_slice(body)
        .map_err(|error| ProviderError::Failed(format!("{what}: unexpected answer: {error}")))
}

/// One entry of a listing, kept as its JSON text until it is parsed as what the provider
/// expects: a large listing is read once, without a JSON tree built for every app first.
pub type Entry = Box<serde_json::value::RawValue>;

/// An entry of a listing, as read ([`Entry`]) or built (a `serde_json::Value`, in tests).
pub trait ListingEntry {
    /// The entry as a `T`.
    fn parse<T: serde::de::DeserializeOwned>(self) -> Result<T, serde_json::Error>;
}

impl ListingEntry for Entry {
    fn parse<T: serde::de::DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.get())
    }
}

impl ListingEntry for &serde_json::value::RawValue {
    fn parse<T: serde::de::DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.get())
    }
}

impl ListingEntry for serde_json::Value {
    fn parse<T: serde::de::DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self)
    }
}

/// The entries of a listing that parse as `T`; the others are skipped with a warning, so one
/// odd entry (a `null` where a list was expected, say) does not hide every other app.
pub fn parse_entries<T: serde::de::DeserializeOwned>(
    provider: &str,
    entries: Vec<impl ListingEntry>,
) -> Vec<T> {
    entries
        .into_iter()
        .filter_map(|entry| match entry.parse::<T>() {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                tracing::warn!(provider, %error, "skipping an app the listing describes oddly");
                None
            }
        })
        .collect()
}

/// Percent-encoding of everything but the unreserved characters (ALPHA, DIGIT, `-`, `.`,
/// `_`, `~`; RFC 3986, and RFC 5849 for OAuth signatures): a name or id put in a URL path
/// or query is encoded rather than trusted.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `Retry-After` in seconds, when present.
fn retry_after(response: &Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Between half and all of `backoff`, so retries from many callers spread out.
fn jitter(backoff: Duration) -> Duration {
    let half = backoff / 2;
    half + half.mul_f64(fastrand::f64())
}

/// A reqwest error with its causes (credentials travel in headers, never in URLs, so the
/// URL it names is safe to show).
fn describe(error: &reqwest::Error) -> String {
    crate::model::error_chain(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_limiter_spreads_calls_over_the_window() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(120));
    }

    #[test]
    fn odd_entries_of_a_listing_are_skipped() {
        #[derive(serde::Deserialize)]
        struct App {
            name: String,
        }
        let entries = vec![
            serde_json::json!({"name": "a"}),
            serde_json::json!({"name": null}),
            serde_json::json!("not an app"),
            serde_json::json!({"name": "b", "extra": 1}),
        ];
        let apps: Vec<App> = parse_entries("test", entries);
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(400));
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
        }
    }
}
