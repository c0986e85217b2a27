//! The admin API's HTTP client for the subcommands: URLs under `/api/v1`, the bearer
//! token, and every failure turned into a [`CliError`] (its exit code follows).

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::{ApiArgs, CliError, FieldProblem};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call may take (but `start --wait`, which gives its own).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a live event stream may stay silent (several heartbeats) before it is taken
/// for lost.
const STREAM_SILENCE: Duration = Duration::from_secs(60);

/// At most this much of a non-JSON error body goes into a message.
const BODY_EXCERPT: usize = 200;

/// A client of one admin API.
#[derive(Debug)]
pub struct Api {
    /// The connection pool.
    http: reqwest::Client,
    /// For the live event stream: no deadline for the whole answer, one for silences.
    stream_http: reqwest::Client,
    /// The API's base URL as given (a path prefix is kept: an API behind a reverse proxy).
    base: Url,
    /// `Bearer <token>`, marked sensitive; none: no token was given.
    auth: Option<HeaderValue>,
    /// `--space`, sent as `?space=` on every call.
    space: Option<String>,
}

impl Api {
    /// A client for `--api-url` with `--token`; a usage error when either is unusable.
    pub fn new(args: &ApiArgs) -> Result<Api, CliError> {
        let text = args.api_url.trim();
        let base = Url::parse(text).map_err(|error| {
            CliError::Usage(format!(
                "--api-url: `{text}` is not a URL ({error}); e.g. {}",
                super::DEFAULT_API_URL
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(CliError::Usage(format!(
                "--api-url: `{text}` is not an http:// or https:// URL"
            )));
        }
        let auth = match args.token.as_ref().filter(|token| !token.is_empty()) {
            Some(token) => {
                let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose()))
                    .map_err(|_| {
                        CliError::Usage(
                            "--token: the token has characters a header cannot carry".to_owned(),
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = |builder: reqwest::ClientBuilder| {
            let mut builder = builder
                .connect_timeout(CONNECT_TIMEOUT)
                .user_agent(concat!("paastis-cli/", env!("CARGO_PKG_VERSION")));
            // The admin API usually listens on loopback: never through an HTTP(S)_PROXY.
            if is_loopback(&base) {
                builder = builder.no_proxy();
            }
            builder
                .build()
                .map_err(|error| CliError::Usage(format!("cannot build the HTTP client: {error}")))
        };
        let http = client(reqwest::Client::builder().timeout(CALL_TIMEOUT))?;
        let stream_http = client(reqwest::Client::builder().read_timeout(STREAM_SILENCE))?;
        let space = args
            .space
            .as_deref()
            .map(str::trim)
            .filter(|space| !space.is_empty())
            .map(str::to_owned);
        Ok(Api {
            http,
            stream_http,
            base,
            auth,
            space,
        })
    }

    /// The base URL for messages, without any user or password.
    fn shown_base(&self) -> String {
        let mut url = self.base.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.to_string()
    }

    /// `<base>/api/v1/<segments...>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, CliError> {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut path = url.path_segments_mut().map_err(|()| {
                CliError::Usage(format!("--api-url: `{}` cannot be a base", self.base))
            })?;
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        Ok(url)
    }

    /// `GET /api/v1/<segments>` with `query`: the answer's JSON.
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, CliError> {
        self.send(Method::GET, segments, query, None, None)
            .await
            .map(|(_, value)| value)
    }

    /// `request` with `query`, the space asked for and the token.
    fn scoped(
        &self,
        mut request: reqwest::RequestBuilder,
        query: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(space) = &self.space {
            request = request.query(&[("space", space)]);
        }
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        request
    }

    /// Any call: the status and JSON of a 2xx answer, or the error it stands for.
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, Value), CliError> {
        let url = self.url(segments)?;
        let mut request = self.scoped(self.http.request(method, url), query);
        if let Some(body) = &body {
            request = request.json(body);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        self.exchange(request).await
    }

    /// Opens the live stream at `GET /api/v1/<segments>` (Server-Sent Events), after the
    /// event `last_event_id`: the answer, its body still to read with [`Api::chunk`].
    pub async fn open_stream(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        last_event_id: i64,
    ) -> Result<reqwest::Response, CliError> {
        let url = self.url(segments)?;
        let request = self
            .stream_http
            .get(url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header("last-event-id", last_event_id.to_string());
        let response = self
            .scoped(request, query)
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.unreachable(&error))?;
        Err(self.error_answer(status, &bytes))
    }

    /// The next piece of a streamed answer; `None` at its end.
    pub async fn chunk(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Option<bytes::Bytes>, CliError> {
        response
            .chunk()
            .await
            .map_err(|error| self.unreachable(&error))
    }

    /// `POST /api/v1/<segments>` with a text body (a configuration file).
    pub async fn post_text(
        &self,
        segments: &[&str],
        content_type: &'static str,
        text: String,
    ) -> Result<(StatusCode, Value), CliError> {
        let url = self.url(segments)?;
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(text);
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        self.exchange(request).await
    }

    /// Sends `request`: the status and JSON of a 2xx answer, or the error it stands for.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Value), CliError> {
        let response = request
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.unreachable(&error))?;
        if status.is_success() {
            // 204 (a deletion), or no body at all: nothing to read.
            if status == StatusCode::NO_CONTENT || bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok((status, Value::Null));
            }
            let value = serde_json::from_slice(&bytes).map_err(|error| {
                CliError::BadAnswer(format!(
                    "{status}, not JSON ({error}); is --api-url the engine's admin.listen?"
                ))
            })?;
            return Ok((status, value));
        }
        Err(self.error_answer(status, &bytes))
    }

    /// A transport failure: which URL, and the lowest cause (`Connection refused`, ...).
    fn unreachable(&self, error: &reqwest::Error) -> CliError {
        let reason = if error.is_timeout() {
            "no answer in time (timed out)".to_owned()
        } else {
            let mut lowest: &dyn std::error::Error = error;
            while let Some(source) = lowest.source() {
                lowest = source;
            }
            let text = lowest.to_string();
            if error.is_connect() && !text.to_lowercase().contains("connect") {
                format!("cannot connect ({text})")
            } else {
                text
            }
        };
        CliError::Unreachable {
            url: self.shown_base(),
            reason,
        }
    }

    /// The error an error answer stands for, from its `{"error": {"code", "message",
    /// "errors"}}`.
    fn error_answer(&self, status: StatusCode, body: &[u8]) -> CliError {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|value| value.get("error"))
                .and_then(|error| error.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let code = field("code").unwrap_or_else(|| "http".to_owned());
        let message = field("message").unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(BODY_EXCERPT).collect();
            if excerpt.is_empty() {
                format!("the admin API answered {status}")
            } else {
                format!("the admin API answered {status}: {excerpt}")
            }
        });
        let errors = parsed
            .as_ref()
            .and_then(|value| value.pointer("/error/errors"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|problem| FieldProblem {
                        path: text(problem.get("path")),
                        message: text(problem.get("message")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        match status {
            StatusCode::UNAUTHORIZED => CliError::Unauthorized(if self.auth.is_some() {
                "the admin API refused the token (from --token or PAASTIS_ADMIN_TOKEN)".to_owned()
            } else {
                "the admin API needs a token: pass --token or set PAASTIS_ADMIN_TOKEN (the engine's admin.token)"
                    .to_owned()
            }),
            StatusCode::NOT_FOUND => CliError::NotFound(message),
            _ => CliError::Api {
                status: status.as_u16(),
                code,
                message,
                errors,
            },
        }
    }
}

/// A string field of an answer, or nothing.
fn text(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// Whether the URL's host is this machine.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn api(url: &str, token: Option<&str>) -> Result<Api, CliError> {
        Api::new(&ApiArgs {
            api_url: url.to_owned(),
            token: token.map(Secret::new),
            json: false,
            space: None,
        })
    }

    #[test]
    fn urls_keep_a_prefix_and_encode_segments() {
        let client = api("http://127.0.0.1:3001", None).expect("client");
        let url = client.url(&["apps", "local", "a b/c"]).expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:3001/api/v1/apps/local/a%20b%2Fc"
        );
        let client = api("https://admin.example.com/paastis/", None).expect("client");
        assert_eq!(
            client.url(&["apps"]).expect("url").as_str(),
            "https://admin.example.com/paastis/api/v1/apps"
        );
    }

    #[test]
    fn bad_urls_and_tokens_are_usage_errors_that_hide_the_token() {
        for bad in ["127.0.0.1:3001", "ftp://host/", "not a url", "mailto:a@b"] {
            let error = api(bad, None).expect_err(bad);
            assert_eq!(error.exit_code(), 2, "{bad}");
        }
        let error = api("http://127.0.0.1:3001", Some("line\nbreak-SECRET")).expect_err("token");
        assert_eq!(error.exit_code(), 2);
        assert!(!error.to_string().contains("SECRET"), "{error}");
    }

    #[test]
    fn error_answers_map_to_their_errors() {
        let client = api("http://u:pw@127.0.0.1:3001", Some("tok")).expect("client");
        assert!(!client.shown_base().contains("pw"));
        let body = br#"{"error": {"code": "conflict", "message": "web is asleep"}}"#;
        let error = client.error_answer(StatusCode::CONFLICT, body);
        assert_eq!(error.exit_code(), 1);
        assert_eq!(error.to_string(), "web is asleep (409 conflict)");
        let error = client.error_answer(StatusCode::UNAUTHORIZED, b"{}");
        assert_eq!(error.exit_code(), 4);
        let error = client.error_answer(StatusCode::NOT_FOUND, body);
        assert_eq!(error.exit_code(), 5);
        let error = client.error_answer(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert!(error.to_string().contains("bad gateway"), "{error}");
        let body = br#"{"error": {"code": "invalid_space", "message": "invalid space",
            "errors": [{"path": "domains[0]", "message": "taken"}, {"path": "tokens", "message": "no"}]}}"#;
        let error = client.error_answer(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(error.exit_code(), 1);
        assert_eq!(
            error.to_string(),
            "invalid space (422 invalid_space)\n  domains[0]: taken\n  tokens: no"
        );
    }
}
