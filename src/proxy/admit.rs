//! Phases **route**, **admit**, **touch** and **wake** of one request: which space and app
//! it is for, whether it may wake it, the activity it counts, and what it gets while the app
//! is not awake (the waiting page, or a hold until it is). The proxy forwards what comes
//! out of here; the gate (forward-auth, the Sablier-compatible API) answers with it
//! instead, so a request is routed and admitted the same whichever door it came through.
//!
//! It never forwards, never reads a request body, and never calls a provider for an awake
//! app.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use super::{Proxy, ProxyError, SpaceRoute, pages, route, wake};
use crate::lifecycle::route::Route;
use crate::lifecycle::{App, InFlight};
use crate::model::{State, Upstream};

/// The space (`None`: the default one) and the app a request was routed to.
pub type RoutedApp = (Option<Arc<SpaceRoute>>, Arc<App>);

/// What the route phase found: the space and its app, or the space and why no app answers.
pub type Routed = Result<RoutedApp, (Option<Arc<SpaceRoute>>, ProxyError)>;

/// What a routed, admitted request gets.
#[derive(Debug)]
pub enum Admission {
    /// A browser's waiting page (503, refreshing itself) while its app wakes.
    Waiting(Response<Full<Bytes>>),
    /// The app is awake: where its requests go.
    Ready(Arc<Upstream>),
}

/// An admitted request: its mark of activity in progress, and what it gets.
#[derive(Debug)]
pub struct Admitted {
    /// The request in progress for its app (the app is not stopped under it; dropping it
    /// counts as activity).
    pub in_flight: InFlight,
    /// The waiting page, or the upstream.
    pub admission: Admission,
    /// How long the request waited for its app to wake (`None`: it did not).
    pub waited: Option<Duration>,
}

impl Proxy {
    /// Routes, admits, touches and (if need be) wakes: the phases before **forward**. The
    /// space and app it found are kept in `routed` (for the metrics, even on an error) and
    /// lent back with what the request gets.
    pub async fn admit<'r, B>(
        &self,
        request: &Request<B>,
        client_ip: IpAddr,
        html: bool,
        routed: &'r mut Option<RoutedApp>,
    ) -> Result<(&'r RoutedApp, Admitted), ProxyError> {
        // route; a host no app answers to may be an app created a moment ago: one
        // discovery (at most every 10 s, shared by everyone asking) before the 404.
        let (space, app) = match self.route(request) {
            Ok(found) => found,
            Err((space, ProxyError::UnknownApp { host })) => {
                let lifecycle = self.space(space.as_ref());
                if !Box::pin(lifecycle.rediscover()).await {
                    return Err(ProxyError::UnknownApp { host });
                }
                self.route(request).map_err(|(_, error)| error)?
            }
            Err((_, error)) => return Err(error),
        };
        // Kept for the metrics; the phases below borrow it from there (no extra clone).
        let found = &*routed.insert((space, app));
        let (space, app) = found;
        // Everything below acts through the app's own space.
        let lifecycle = self.space(space.as_ref());

        // admit: monitors and health checks configured as not counting never wake an app.
        let ignored = {
            let settings = lifecycle.settings_now();
            let activity = &settings.activity;
            !activity.is_empty() && {
                let agent = request
                    .headers()
                    .get(http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok());
                activity.ignores(agent, request.uri().path())
            }
        };
        // touch
        let in_flight = if ignored {
            lifecycle.begin_quiet_request(app)
        } else {
            lifecycle.begin_request(app)
        };
        if ignored && app.state() != State::Awake {
            let app = app.key.name.to_string();
            return Err(ProxyError::Ignored { app });
        }

        // A schedule may keep requests from waking it (`wake_on_request: false`).
        if matches!(app.state(), State::Asleep | State::Failed)
            && let Some(refusal) = lifecycle.wake_refused(app)
        {
            let now = lifecycle.clock().wall_now();
            return Err(ProxyError::Scheduled {
                app: app.key.name.to_string(),
                schedule: refusal.schedule,
                until: refusal
                    .until
                    .map(|until| crate::schedules::local_text(until, refusal.timezone)),
                retry_after: refusal.until.map(|until| {
                    std::time::SystemTime::from(until)
                        .duration_since(now)
                        .map_or(1, |left| left.as_secs().max(1))
                }),
            });
        }

        // A browser opening a sleeping app gets the waiting page at once, while it wakes.
        if app.state() != State::Awake
            && app
                .conf()
                .policy
                .strategy
                .shows_page(request.method(), html)
        {
            let before = app.phase();
            // The wake's span (traces on) is the request's child.
            let requested = crate::traces::within_request_sync(request.headers(), || {
                lifecycle.request_wake(app, || wake::cause(request, client_ip))
            });
            if let Err(error) = requested {
                let app = app.key.name.to_string();
                return Err(ProxyError::Wake { app, error });
            }
            let phase = app.phase();
            // The reason itself is the operator's (in the events): the visitor learns that
            // the last attempt failed.
            let last_failure = before.state == State::Failed;
            let waiting_for = match phase.state {
                State::Waking => phase.since.elapsed(),
                _ => Duration::ZERO,
            };
            let started_at = lifecycle.clock().wall_now().checked_sub(waiting_for);
            let page = pages::waiting(
                &app.look(),
                &crate::pages::Visitor::of(request.headers()),
                &crate::pages::Waiting {
                    app: &app.key.name,
                    waiting_for,
                    started_at,
                    eta: app.eta(),
                    previous_failure: last_failure,
                },
            );
            let admission = Admission::Waiting(page);
            return Ok((
                found,
                Admitted {
                    in_flight,
                    admission,
                    waited: None,
                },
            ));
        }

        // awake? / wake -> hold
        match wake::upstream(lifecycle, app, request, client_ip).await {
            Ok((upstream, waited)) => Ok((
                found,
                Admitted {
                    in_flight,
                    admission: Admission::Ready(upstream),
                    waited,
                },
            )),
            Err(error) => {
                let app = app.key.name.to_string();
                Err(ProxyError::Wake { app, error })
            }
        }
    }

    /// Phase **route**: the space the host belongs to (`None`: the default one), and the
    /// app of that space this request is for. A host never reaches another space's apps:
    /// the space is decided first, then only its routes are looked at.
    pub fn route<B>(&self, request: &Request<B>) -> Routed {
        let host = route::request_host(request).map_err(|error| (None, error.into()))?;
        let (space, key) = self.tenant(&host);
        let lifecycle = self.space(space.as_ref());
        let routes = lifecycle.routes();
        let route = key.and_then(|key| routes.get(key).map(|route| (key, route)));
        match route {
            Some((_, Route::App(app))) => Ok((space, Arc::clone(app))),
            None => Err((
                space,
                ProxyError::UnknownApp {
                    host: host.into_owned(),
                },
            )),
            Some((key, Route::Ambiguous(keys))) => {
                let rest = &host[key.len()..];
                let choices = keys.iter().map(|k| format!("{k}{rest}")).collect();
                Err((
                    space,
                    ProxyError::Ambiguous {
                        host: host.into_owned(),
                        choices,
                    },
                ))
            }
        }
    }
}
