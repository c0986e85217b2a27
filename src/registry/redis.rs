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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tokio::time::{sleep, timeout};

use super::{
    ActivityUpdate, Claim, Finished, Health, Lease, Notice, RedisConfig, Registry, RegistryError,
    Shared,
};
use crate::model::PolicyOverride;
use crate::model::{AppKey, Formation, State, Upstream};
use crate::providers::{AppInfo, AppStatus};
use crate::secret::redact::redact_url;

/// Deadline of one Redis call: past it the call counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);

/// First and largest pause between connection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));

/// Wake: take the app's lock unless it is awake already; announce `waking`.
const CLAIM_WAKE: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'awake' and redis.call('EXISTS', KEYS[2]) == 0 then
  return {'awake', tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')}
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'busy', 0}
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'state', 'waking', 'since', ARGV[3], 'by', ARGV[4])
redis.call('HDEL', KEYS[1], 'reason')
redis.call('PUBLISH', ARGV[5], cjson.encode({k = {ARGV[6], ARGV[7], ARGV[8]}, s = 'waking', q = seq, b = ARGV[4]}))
return {'granted', seq}
";

/// Stop: refused when an instance saw activity after the idle limit; else take the lock and
/// announce `stopping`.
const CLAIM_STOP: &str = r"
local activity = tonumber(redis.call('HGET', KEYS[1], 'activity') or '0')
if activity > tonumber(ARGV[9]) then
  return {'active', activity}
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'busy', 0}
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'state', 'stopping', 'since', ARGV[3], 'by', ARGV[4])
redis.call('PUBLISH', ARGV[5], cjson.encode({k = {ARGV[6], ARGV[7], ARGV[8]}, s = 'stopping', q = seq, b = ARGV[4]}))
return {'granted', seq}
";

/// Records a state (and activity, max semantics), releases the lock if this token holds
/// it, announces the change. With a token (the outcome of a wake or stop), only while that
/// token still holds the lock, or while nobody took it or changed the app since it lapsed
/// (the change counter is still the one of the claim, ARGV[11]); else nothing is written
/// and the answer is `lost`.
const SET_STATE: &str = r"
if ARGV[1] ~= '' then
  local holder = redis.call('GET', KEYS[2])
  if holder ~= ARGV[1] then
    local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
    if holder or seq ~= tonumber(ARGV[11]) then
      return {'lost', seq}
    end
  end
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'since', ARGV[4], 'by', ARGV[5])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'reason', ARGV[3])
else
  redis.call('HDEL', KEYS[1], 'reason')
end
local activity = tonumber(ARGV[10])
if activity > 0 and activity > tonumber(redis.call('HGET', KEYS[1], 'activity') or '0') then
  redis.call('HSET', KEYS[1], 'activity', ARGV[10])
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[6], cjson.encode({k = {ARGV[7], ARGV[8], ARGV[9]}, s = ARGV[2], q = seq, r = ARGV[3], b = ARGV[5]}))
return {'written', seq}
";

/// Extends a lease held by this token.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes a lease held by this token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Merges activities (max semantics) and reads every app's shared state; first the epoch.
const SYNC: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
local out = {redis.call('GET', KEYS[1])}
for i = 2, #KEYS do
  local activity = tonumber(ARGV[i])
  if activity > 0 and activity > tonumber(redis.call('HGET', KEYS[i], 'activity') or '0') then
    redis.call('HSET', KEYS[i], 'activity', ARGV[i])
  end
  local v = redis.call('HMGET', KEYS[i], 'state', 'seq', 'activity', 'reason', 'pin')
  out[#out + 1] = v[1] or ''
  out[#out + 1] = v[2] or '0'
  out[#out + 1] = v[3] or '0'
  out[#out + 1] = v[4] or ''
  out[#out + 1] = v[5] or '0'
end
return out
";

/// The compiled scripts (sent by hash; loaded again after a Redis restart).
struct Scripts {
    claim_wake: Script,
    claim_stop: Script,
    set_state: Script,
    renew: Script,
    release: Script,
    sync: Script,
}

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

    /// Makes the first connection, retrying with backoff until it works.
    async fn connect(&self) {
        let mut pause = BACKOFF.0;
        loop {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CALL_TIMEOUT))
                .set_response_timeout(Some(CALL_TIMEOUT))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(1));
            let attempt = timeout(
                CALL_TIMEOUT * 2,
                ConnectionManager::new_with_config(self.client.clone(), config),
            )
            .await;
            if let Some(conn) = self.outcome(attempt) {
                self.conn.store(Some(Arc::new(conn)));
                return;
            }
            // Not there: the engine starts without it and keeps trying.
            self.settled.send_replace(true);
            sleep(jitter(pause)).await;
            pause = (pause * 2).min(BACKOFF.1);
        }
    }

    /// Holds or takes the leader lease, every third of its duration.
    async fn lead(&self) {
        let every = self.lease / 3;
        let key = self.leader_key();
        loop {
            if let Some(mut conn) = self.connection() {
                if *self.leader.borrow() {
                    let renewed: Option<i64> = self.outcome(
                        timeout(
                            CALL_TIMEOUT,
                            self.scripts
                                .renew
                                .key(&key)
                                .arg(&self.instance)
                                .arg(self.lease_ms())
                                .invoke_async(&mut conn),
                        )
                        .await,
                    );
                    if renewed == Some(0)
                        && self
                            .leader
                            .send_if_modified(|leader| std::mem::replace(leader, false))
                    {
                        tracing::warn!("registry: leader lease lost to another instance");
                    }
                } else {
                    let taken: Option<Option<String>> = self.outcome(
                        timeout(
                            CALL_TIMEOUT,
                            redis::cmd("SET")
                                .arg(&key)
                                .arg(&self.instance)
                                .arg("NX")
                                .arg("PX")
                                .arg(self.lease_ms())
                                .query_async(&mut conn),
                        )
                        .await,
                    );
                    if matches!(taken, Some(Some(_))) {
                        tracing::info!(instance = %self.instance, "registry: this instance is the leader");
                        self.leader.send_replace(true);
                    }
                }
            }
            self.settled.send_replace(true);
            sleep(every).await;
        }
    }

    /// Receives notices, reconnecting with backoff.
    async fn listen(&self) {
        let mut pause = BACKOFF.0;
        let channel = self.channel();
        loop {
            let attempt = timeout(CALL_TIMEOUT, async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            })
            .await;
            match attempt {
                Ok(Ok(pubsub)) => {
                    pause = BACKOFF.0;
                    // Whatever was announced while unsubscribed is found by the next sync.
                    let _ = self.notices.send(Notice::Reset);
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        match parse_notice(&payload, &self.instance) {
                            Some(notice) => {
                                let _ = self.notices.send(notice);
                            }
                            None => tracing::debug!("registry: unreadable notice ignored"),
                        }
                    }
                    tracing::debug!("registry: notice subscription ended; reconnecting");
                }
                Ok(Err(error)) => {
                    tracing::debug!(error = %scrub(&error.to_string(), ""), "registry: cannot subscribe yet");
                }
                Err(_) => tracing::debug!("registry: subscribing timed out"),
            }
            sleep(jitter(pause)).await;
            pause = (pause * 2).min(BACKOFF.1);
        }
    }

    /// Renews an app lease while it is held.
    fn keep(&self, key: &AppKey, token: &str) -> Option<tokio::task::AbortHandle> {
        let mut conn = self.connection()?;
        let lock_key = self.lock_key(key);
        let token = token.to_owned();
        let lease_ms = self.lease_ms();
        let every = self.lease / 3;
        let scripts = Arc::clone(&self.scripts);
        let task = tokio::spawn(async move {
            loop {
                sleep(every).await;
                let renewed = timeout(
                    CALL_TIMEOUT,
                    scripts
                        .renew
                        .key(&lock_key)
                        .arg(&token)
                        .arg(lease_ms)
                        .invoke_async::<i64>(&mut conn),
                )
                .await;
                if matches!(renewed, Ok(Ok(0))) {
                    tracing::debug!(lock = %lock_key, "registry: app lease expired while held");
                    return;
                }
            }
        });
        Some(task.abort_handle())
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

/// One app of a shared listing.
#[derive(Debug, Serialize, Deserialize)]
struct WireApp {
    /// The app's name.
    n: String,
    /// `running`, `stopped`, `starting`, `unknown` or `failed`.
    s: String,
    /// Why it failed, for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
    /// Its upstream URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    /// Its formation.
    #[serde(default)]
    f: Formation,
    /// Extra route keys.
    #[serde(default)]
    a: Vec<String>,
}

impl From<&AppInfo> for WireApp {
    fn from(info: &AppInfo) -> WireApp {
        let (status, reason) = match &info.status {
            AppStatus::Running => ("running", None),
            AppStatus::Stopped => ("stopped", None),
            AppStatus::Starting => ("starting", None),
            AppStatus::Unknown => ("unknown", None),
            AppStatus::Failed(reason) => ("failed", Some(reason.clone())),
        };
        WireApp {
            n: info.name.clone(),
            s: status.to_owned(),
            r: reason,
            u: info.upstream.as_ref().map(ToString::to_string),
            f: info.formation.clone(),
            a: info.aliases.clone(),
        }
    }
}

impl WireApp {
    fn into_info(self) -> Option<AppInfo> {
        let status = match self.s.as_str() {
            "running" => AppStatus::Running,
            "stopped" => AppStatus::Stopped,
            "starting" => AppStatus::Starting,
            "unknown" => AppStatus::Unknown,
            "failed" => AppStatus::Failed(self.r.unwrap_or_default()),
            _ => return None,
        };
        Some(AppInfo {
            name: self.n,
            status,
            upstream: self.u.as_deref().and_then(Upstream::from_url),
            formation: self.f,
            policy: PolicyOverride::default(),
            aliases: self.a,
        })
    }
}

/// A published notice, from its JSON.
fn parse_notice(payload: &str, instance: &str) -> Option<Notice> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    if value.get("sp").is_some() {
        // Its own announcement tells this instance nothing new.
        return (value.get("b").and_then(|b| b.as_str()) != Some(instance))
            .then_some(Notice::Spaces);
    }
    if let Some(provider) = value.get("l").and_then(|l| l.as_str()) {
        let space = value.get("ls").and_then(|s| s.as_str());
        return Some(Notice::Listing {
            space: space.unwrap_or(crate::model::DEFAULT_SPACE).to_owned(),
            provider: provider.to_owned(),
        });
    }
    let parts = value.get("k")?.as_array()?;
    let part = |i: usize| parts.get(i).and_then(|p| p.as_str());
    let key = AppKey::new(part(0)?, part(1)?, part(2)?);
    let state = parse_state(value.get("s")?.as_str()?)?;
    Some(Notice::State {
        key,
        shared: Shared {
            state: Some(state),
            seq: value.get("q")?.as_u64()?,
            reason: value
                .get("r")
                .and_then(|r| r.as_str())
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
            activity: None,
            pinned: None,
        },
        own: value.get("b").and_then(|b| b.as_str()) == Some(instance),
    })
}

/// A stored pin: `forever`, a time in unix milliseconds, or `0` (not pinned).
fn parse_pin(text: &str) -> Option<Option<SystemTime>> {
    match text {
        "forever" => Some(None),
        text => text
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .map(|ms| Some(from_unix_ms(ms))),
    }
}

fn parse_state(word: &str) -> Option<State> {
    Some(match word {
        "asleep" => State::Asleep,
        "waking" => State::Waking,
        "awake" => State::Awake,
        "stopping" => State::Stopping,
        "failed" => State::Failed,
        _ => return None,
    })
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Between half and all of `pause`, so instances that lost Redis together do not all
/// come back at the same instant.
fn jitter(pause: Duration) -> Duration {
    pause / 2 + pause.mul_f64(fastrand::f64() / 2.0)
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
    fn notices_round_trip_their_json() {
        let notice = parse_notice(
            r#"{"k":["default","scalingo","shop"],"s":"awake","q":7,"r":"","b":"me"}"#,
            "me",
        );
        assert_eq!(
            notice,
            Some(Notice::State {
                key: AppKey::new("default", "scalingo", "shop"),
                shared: Shared {
                    state: Some(State::Awake),
                    seq: 7,
                    reason: None,
                    activity: None,
                    pinned: None,
                },
                own: true,
            })
        );
        assert_eq!(
            parse_notice(r#"{"l":"heroku"}"#, "me"),
            Some(Notice::Listing {
                space: "default".to_owned(),
                provider: "heroku".to_owned()
            })
        );
        // Spaces changed: told to the other instances, not to the one that said it.
        assert_eq!(
            parse_notice(r#"{"sp":1,"b":"other"}"#, "me"),
            Some(Notice::Spaces)
        );
        assert_eq!(parse_notice(r#"{"sp":1,"b":"me"}"#, "me"), None);
        for bad in [
            "",
            "{}",
            r#"{"k":["a"],"s":"awake","q":1}"#,
            r#"{"k":["a","b","c"],"s":"dancing","q":1}"#,
        ] {
            assert_eq!(parse_notice(bad, "me"), None, "{bad}");
        }
    }

    #[test]
    fn listings_survive_the_wire() {
        let info = AppInfo {
            name: "shop".to_owned(),
            status: AppStatus::Failed("crashed".to_owned()),
            upstream: Upstream::from_url("https://shop.example.com"),
            formation: [("web".to_owned(), 2)].into_iter().collect(),
            policy: PolicyOverride::default(),
            aliases: vec!["app_1".to_owned()],
        };
        let json = serde_json::to_string(&[WireApp::from(&info)]).expect("json");
        let back: Vec<WireApp> = serde_json::from_str(&json).expect("parse");
        let back = back
            .into_iter()
            .next()
            .and_then(WireApp::into_info)
            .expect("app");
        assert_eq!(back.name, "shop");
        assert_eq!(back.status, AppStatus::Failed("crashed".to_owned()));
        assert_eq!(back.upstream, info.upstream);
        assert_eq!(back.formation, info.formation);
        assert_eq!(back.aliases, info.aliases);
    }

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
