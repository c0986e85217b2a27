//! The Redis registry's background work: the first connection (with backoff), the leader
//! lease held or taken every third of its duration, the subscription to notices
//! (reconnecting with backoff), and the renewal of an app lease while it is held.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::{sleep, timeout};

use super::codec::parse_notice;
use super::{BACKOFF, CALL_TIMEOUT, RedisRegistry, scrub};
use crate::model::AppKey;
use crate::registry::Notice;

impl RedisRegistry {
    /// Makes the first connection, retrying with backoff until it works.
    pub(super) async fn connect(&self) {
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
    pub(super) async fn lead(&self) {
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
    pub(super) async fn listen(&self) {
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
    pub(super) fn keep(&self, key: &AppKey, token: &str) -> Option<tokio::task::AbortHandle> {
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
}

/// Between half and all of `pause`, so instances that lost Redis together do not all
/// come back at the same instant.
fn jitter(pause: Duration) -> Duration {
    pause / 2 + pause.mul_f64(fastrand::f64() / 2.0)
}
