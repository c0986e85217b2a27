//! The Redis registry: the state several engine instances share.
//!
//! Keys, all under `<prefix>:` (nothing else is ever read, written or listed, and the
//! database is never flushed):
//!
//! | key | type | what |
//! |---|---|---|
//! | `leader` | string | the leader's instance id, with a TTL of `registry.lease` |
//! | `epoch` | string | a random id set once; a new one means Redis lost its data |
//! | `app:<space>/<provider>/<name>` | hash | `state`, `seq`, `reason`, `activity` (ms), `since`, `by` |
//! | `lock:<space>/<provider>/<name>` | string | the token of the instance waking or stopping the app |
//! | `listing:<space>/<provider>` | string | the leader's latest listing (JSON) |
//! | `notices` | channel | every state change and new listing (JSON) |
//!
//! Every check-and-set is one Lua script, so two instances never both get a lease, and the
//! outcome of a wake or stop is written only while its lease holds (or lapsed untouched): a
//! holder that finishes late never overwrites the state of the instance that took over. Every
//! call has a short deadline: a Redis that is down or slow makes calls fail fast (and the
//! instance act alone), never hang the engine. The first connection is made in the
//! background, with backoff, so the engine starts without Redis.
//!
//! This file holds the registry, its key names and its calls; beside it in `redis/`: the Lua
//! scripts (`scripts`), the background work (first connection, leader lease, notice
//! subscription, app lease renewal: `background`) and how values are written and read
//! (`codec`).

mod background;
mod codec;
mod scripts;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio::sync::{broadcast, watch};
use tokio::time::timeout;

use super::{
    ActivityUpdate, Claim, Finished, Health, Lease, Notice, RedisConfig, Registry, RegistryError,
    Shared,
};
use crate::model::{AppKey, State};
use crate::providers::AppInfo;
use crate::secret::redact::redact_url;
use codec::{WireApp, from_unix_ms, parse_pin, parse_state, unix_ms};
use scripts::{CLAIM_STOP, CLAIM_WAKE, RELEASE, RENEW, SET_STATE, SYNC, Scripts};

/// Deadline of one Redis call: past it the call counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);

/// First and largest pause between connection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));

/// The Redis registry of one instance.
pub struct RedisRegistry {
    /// Makes connections (holds the URL; never printed).
    client: redis::Client,
    /// The URL with its password hidden, for messages.
    shown_url: String,
    /// `<prefix>:`.
    prefix: String,
    /// Activity write-behind period.
    flush_every: Duration,
    /// Lease duration (leader and apps).
    lease: Duration,
    /// This instance's id (`<host>-<pid>-<random>`), the value of the leases it holds.
    instance: String,
    /// The connection, once made; it reconnects by itself after that.
    conn: ArcSwapOption<ConnectionManager>,
    /// Whether the last call got an answer.
    reachable: AtomicBool,
    /// The last error, for [`Registry::health`] (never holds the URL).
    last_error: std::sync::Mutex<Option<String>>,
    /// Whether this instance holds the leader lease (as of its last renewal).
    leader: watch::Sender<bool>,
    /// The last epoch seen; a different one means Redis lost its data.
    epoch: std::sync::Mutex<Option<String>>,
    /// Notices for the lifecycle.
    notices: broadcast::Sender<Notice>,
    /// The Lua scripts.
    scripts: Arc<Scripts>,
    /// Becomes true once the first connection attempt is over (and, if it worked, the
    /// first try for the leader lease).
    settled: watch::Sender<bool>,
}

impl std::fmt::Debug for RedisRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRegistry")
            .field("url", &self.shown_url)
            .field("prefix", &self.prefix)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl RedisRegistry {
    /// A registry for this config; nothing is connected yet.
    pub fn new(config: &RedisConfig) -> Result<RedisRegistry, RegistryError> {
        let shown_url = redact_url(config.url.expose());
        let client =
            redis::Client::open(config.url.expose()).map_err(|error| RegistryError::BadUrl {
                url: shown_url.clone(),
                reason: scrub(&error.to_string(), config.url.expose()),
            })?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "paastis".to_owned());
        let instance = format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..));
        Ok(RedisRegistry {
            client,
            shown_url,
            prefix: format!("{}:", config.prefix),
            flush_every: config.flush_every,
            lease: config.lease,
            instance,
            conn: ArcSwapOption::empty(),
            reachable: AtomicBool::new(false),
            last_error: std::sync::Mutex::new(Some("not connected yet".to_owned())),
            leader: watch::Sender::new(false),
            epoch: std::sync::Mutex::new(None),
            notices: broadcast::channel(1024).0,
            scripts: Arc::new(Scripts {
                claim_wake: Script::new(CLAIM_WAKE),
                claim_stop: Script::new(CLAIM_STOP),
                set_state: Script::new(SET_STATE),
                renew: Script::new(RENEW),
                release: Script::new(RELEASE),
                sync: Script::new(SYNC),
            }),
            settled: watch::Sender::new(false),
        })
    }

    fn app_key(&self, key: &AppKey) -> String {
        format!(
            "{}app:{}/{}/{}",
            self.prefix, key.space, key.provider, key.name
        )
    }

    fn lock_key(&self, key: &AppKey) -> String {
        format!(
            "{}lock:{}/{}/{}",
            self.prefix, key.space, key.provider, key.name
        )
    }

    fn listing_key(&self, space: &str, provider: &str) -> String {
        format!("{}listing:{space}/{provider}", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}notices", self.prefix)
    }

    fn leader_key(&self) -> String {
        format!("{}leader", self.prefix)
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// The connection, if one was made.
    fn connection(&self) -> Option<ConnectionManager> {
        self.conn.load_full().map(|conn| (*conn).clone())
    }

    /// Records the outcome of a call: its value, or `None` after noting the failure.
    fn outcome<T>(
        &self,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        match result {
            Ok(Ok(value)) => {
                if !self.reachable.swap(true, Ordering::SeqCst) {
                    tracing::info!(url = %self.shown_url, "registry: Redis reachable");
                    *lock(&self.last_error) = None;
                    let _ = self.notices.send(Notice::Reset);
                }
                Some(value)
            }
            Ok(Err(error)) => {
                self.failed(scrub(&error.to_string(), ""));
                None
            }
            Err(_) => {
                self.failed(format!("no answer within {} ms", CALL_TIMEOUT.as_millis()));
                None
            }
        }
    }

    fn failed(&self, error: String) {
        if self.reachable.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                url = %self.shown_url,
                %error,
                "registry: Redis unreachable; serving from local state, stops paused"
            );
        }
        *lock(&self.last_error) = Some(error);
        if self
            .leader
            .send_if_modified(|leader| std::mem::replace(leader, false))
        {
            tracing::warn!("registry: leadership given up (Redis unreachable)");
        }
    }

    async fn claim(&self, key: &AppKey, stop: Option<SystemTime>) -> Claim {
        let Some(mut conn) = self.connection() else {
            return Claim::Unavailable;
        };
        let token = format!("{}-{:016x}", self.instance, fastrand::u64(..));
        let script = if stop.is_some() {
            &self.scripts.claim_stop
        } else {
            &self.scripts.claim_wake
        };
        let mut invocation = script.key(self.app_key(key));
        invocation
            .key(self.lock_key(key))
            .arg(&token)
            .arg(self.lease_ms())
            .arg(unix_ms(SystemTime::now()))
            .arg(&self.instance)
            .arg(self.channel())
            .arg(&*key.space)
            .arg(&*key.provider)
            .arg(&*key.name);
        if let Some(idle_before) = stop {
            invocation.arg(unix_ms(idle_before));
        }
        let answer: Option<(String, u64)> =
            self.outcome(timeout(CALL_TIMEOUT, invocation.invoke_async(&mut conn)).await);
        match answer {
            None => Claim::Unavailable,
            Some((word, value)) => match word.as_str() {
                "granted" => {
                    let keeper = self.keep(key, &token);
                    Claim::Granted(Lease {
                        token,
                        key: key.clone(),
                        keeper,
                        seq: value,
                    })
                }
                "awake" => Claim::AlreadyAwake,
                "active" => Claim::Active(from_unix_ms(value)),
                _ => Claim::Busy,
            },
        }
    }

    /// Writes a state: under `lease` (its token and the change counter of its claim) only
    /// while it still holds, else whatever the app's lease.
    async fn set_state(
        &self,
        key: &AppKey,
        lease: Option<(&str, u64)>,
        state: State,
        reason: Option<&str>,
        activity: Option<SystemTime>,
    ) -> Finished {
        let Some(mut conn) = self.connection() else {
            return Finished::Unavailable;
        };
        let (token, claimed) = lease.unwrap_or(("", 0));
        let mut invocation = self.scripts.set_state.key(self.app_key(key));
        invocation
            .key(self.lock_key(key))
            .arg(token)
            .arg(state.to_string())
            .arg(reason.unwrap_or(""))
            .arg(unix_ms(SystemTime::now()))
            .arg(&self.instance)
            .arg(self.channel())
            .arg(&*key.space)
            .arg(&*key.provider)
            .arg(&*key.name)
            .arg(activity.map_or(0, unix_ms))
            .arg(claimed);
        let answer: Option<(String, u64)> =
            self.outcome(timeout(CALL_TIMEOUT, invocation.invoke_async(&mut conn)).await);
        match answer {
            None => Finished::Unavailable,
            Some((word, seq)) if word == "written" => Finished::Written(seq),
            Some(_) => {
                tracing::warn!(
                    app = %key,
                    %state,
                    "registry: app lease lost before its outcome was written; \
                     the instance that took the app over has the last word"
                );
                Finished::LeaseLost
            }
        }
    }
}

#[async_trait::async_trait]
impl Registry for RedisRegistry {
    fn is_shared(&self) -> bool {
        true
    }

    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    fn health(&self) -> Health {
        let role = if self.is_leader() {
            "leader"
        } else {
            "follower"
        };
        match lock(&self.last_error).clone() {
            None if self.reachable.load(Ordering::SeqCst) => Health {
                ok: true,
                detail: format!("redis: connected ({role})"),
            },
            error => Health {
                ok: false,
                detail: format!(
                    "redis: degraded ({}): serving from local state, stops paused",
                    error.unwrap_or_else(|| "unreachable".to_owned())
                ),
            },
        }
    }

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        Some(self.notices.subscribe())
    }

    fn flush_every(&self) -> Duration {
        self.flush_every
    }

    async fn run(self: Arc<Self>) {
        self.connect().await;
        let listener = Arc::clone(&self);
        let listening = tokio::spawn(async move { listener.listen().await });
        self.lead().await;
        listening.abort();
    }

    async fn settle(&self, within: Duration) {
        let mut settled = self.settled.subscribe();
        let _ = timeout(within, settled.wait_for(|settled| *settled)).await;
    }

    async fn claim_wake(&self, key: &AppKey) -> Claim {
        self.claim(key, None).await
    }

    async fn claim_stop(&self, key: &AppKey, idle_before: SystemTime) -> Claim {
        self.claim(key, Some(idle_before)).await
    }

    async fn finish(
        &self,
        lease: Lease,
        state: State,
        reason: Option<&str>,
        activity: Option<SystemTime>,
    ) -> Finished {
        let written = self
            .set_state(
                &lease.key,
                Some((&lease.token, lease.seq)),
                state,
                reason,
                activity,
            )
            .await;
        drop(lease);
        written
    }

    async fn publish(
        &self,
        key: &AppKey,
        state: State,
        activity: Option<SystemTime>,
    ) -> Option<u64> {
        match self.set_state(key, None, state, None, activity).await {
            Finished::Written(seq) => Some(seq),
            Finished::LeaseLost | Finished::Unavailable => None,
        }
    }

    async fn shared(&self, key: &AppKey) -> Option<Shared> {
        let mut conn = self.connection()?;
        type Fields = (
            Option<String>,
            Option<u64>,
            Option<u64>,
            Option<String>,
            Option<String>,
        );
        let values: Option<Fields> = self.outcome(
            timeout(
                CALL_TIMEOUT,
                redis::cmd("HMGET")
                    .arg(self.app_key(key))
                    .arg("state")
                    .arg("seq")
                    .arg("activity")
                    .arg("reason")
                    .arg("pin")
                    .query_async(&mut conn),
            )
            .await,
        );
        let (state, seq, activity, reason, pin) = values?;
        Some(Shared {
            state: state.as_deref().and_then(parse_state),
            seq: seq.unwrap_or(0),
            reason: reason.filter(|r| !r.is_empty()),
            activity: activity.filter(|a| *a > 0).map(from_unix_ms),
            pinned: pin.as_deref().and_then(parse_pin),
        })
    }

    async fn sync(&self, apps: &[ActivityUpdate]) -> Option<Vec<Shared>> {
        let mut conn = self.connection()?;
        let candidate = format!("{:016x}", fastrand::u64(..));
        let mut invocation = self.scripts.sync.key(format!("{}epoch", self.prefix));
        invocation.arg(&candidate);
        for (key, activity) in apps {
            invocation
                .key(self.app_key(key))
                .arg(activity.map_or(0, unix_ms));
        }
        let values: Vec<String> =
            self.outcome(timeout(CALL_TIMEOUT, invocation.invoke_async(&mut conn)).await)?;
        let mut values = values.into_iter();
        let epoch = values.next()?;
        let changed = {
            let mut known = lock(&self.epoch);
            let changed = known.as_ref().is_some_and(|known| *known != epoch);
            *known = Some(epoch);
            changed
        };
        if changed {
            tracing::warn!("registry: Redis lost its data (new epoch); shared state rebuilt");
            let _ = self.notices.send(Notice::Reset);
        }
        let mut shared = Vec::with_capacity(apps.len());
        while let (Some(state), Some(seq), Some(activity), Some(reason), Some(pin)) = (
            values.next(),
            values.next(),
            values.next(),
            values.next(),
            values.next(),
        ) {
            shared.push(Shared {
                state: parse_state(&state),
                seq: seq.parse().unwrap_or(0),
                reason: Some(reason).filter(|r| !r.is_empty()),
                activity: activity
                    .parse::<u64>()
                    .ok()
                    .filter(|a| *a > 0)
                    .map(from_unix_ms),
                pinned: parse_pin(&pin),
            });
        }
        (shared.len() == apps.len()).then_some(shared)
    }

    async fn set_pin(&self, key: &AppKey, pinned: Option<Option<SystemTime>>) -> bool {
        let Some(mut conn) = self.connection() else {
            return false;
        };
        let value = match pinned {
            None => "0".to_owned(),
            Some(None) => "forever".to_owned(),
            Some(Some(until)) => unix_ms(until).to_string(),
        };
        let written: Option<i64> =
            self.outcome(timeout(CALL_TIMEOUT, conn.hset(self.app_key(key), "pin", value)).await);
        written.is_some()
    }

    async fn forget(&self, key: &AppKey) {
        let Some(mut conn) = self.connection() else {
            return;
        };
        let _: Option<i64> = self.outcome(timeout(CALL_TIMEOUT, conn.del(self.app_key(key))).await);
    }

    async fn confirm_leader(&self) -> bool {
        let Some(mut conn) = self.connection() else {
            return false;
        };
        let holder: Option<Option<String>> =
            self.outcome(timeout(CALL_TIMEOUT, conn.get(self.leader_key())).await);
        let confirmed = holder.flatten().as_deref() == Some(self.instance.as_str());
        if !confirmed
            && self
                .leader
                .send_if_modified(|leader| std::mem::replace(leader, false))
        {
            tracing::warn!("registry: not the leader any more");
        }
        confirmed
    }

    async fn put_listing(&self, space: &str, provider: &str, listing: &[AppInfo]) {
        let Some(mut conn) = self.connection() else {
            return;
        };
        let wire: Vec<WireApp> = listing.iter().map(WireApp::from).collect();
        let Ok(json) = serde_json::to_string(&wire) else {
            return;
        };
        let notice = serde_json::json!({ "l": provider, "ls": space }).to_string();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(self.listing_key(space, provider), json)
            .ignore()
            .publish(self.channel(), notice)
            .ignore();
        let _: Option<()> = self.outcome(timeout(CALL_TIMEOUT, pipe.query_async(&mut conn)).await);
    }

    async fn announce_spaces(&self) {
        let Some(mut conn) = self.connection() else {
            return;
        };
        let notice = serde_json::json!({ "sp": 1, "b": self.instance }).to_string();
        let mut command = redis::cmd("PUBLISH");
        command.arg(self.channel()).arg(notice);
        let published = command.query_async::<i64>(&mut conn);
        let _: Option<i64> = self.outcome(timeout(CALL_TIMEOUT, published).await);
    }

    async fn listing(&self, space: &str, provider: &str) -> Option<Vec<AppInfo>> {
        let mut conn = self.connection()?;
        let json: Option<String> = self
            .outcome(timeout(CALL_TIMEOUT, conn.get(self.listing_key(space, provider))).await)
            .flatten();
        let wire: Vec<WireApp> = serde_json::from_str(&json?).ok()?;
        Some(wire.into_iter().filter_map(WireApp::into_info).collect())
    }

    async fn release(&self) {
        let Some(mut conn) = self.connection() else {
            return;
        };
        if self.is_leader() {
            let _: Option<i64> = self.outcome(
                timeout(
                    CALL_TIMEOUT,
                    self.scripts
                        .release
                        .key(self.leader_key())
                        .arg(&self.instance)
                        .invoke_async(&mut conn),
                )
                .await,
            );
            self.leader.send_replace(false);
        }
    }
}

/// An error message without the URL's password (client errors may quote the URL).
fn scrub(message: &str, url: &str) -> String {
    if url.is_empty() || !message.contains(url) {
        message.to_owned()
    } else {
        message.replace(url, &redact_url(url))
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_refused_without_its_password() {
        let config = RedisConfig {
            url: crate::secret::Secret::new("nosuch://user:hunter22@host:1"),
            prefix: "p".to_owned(),
            flush_every: Duration::from_secs(1),
            lease: Duration::from_secs(10),
        };
        let error = RedisRegistry::new(&config)
            .expect_err("refused")
            .to_string();
        assert!(!error.contains("hunter22"), "{error}");
    }
}
