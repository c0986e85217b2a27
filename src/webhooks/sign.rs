//! What a delivery carries: its body in the webhook's format, and its signature.
//!
//! **Signature**: with a `secret`, each attempt carries
//! `Paastis-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is the lowercase hex
//! HMAC-SHA256, keyed with the secret, of `<t>.<body>` (the timestamp, a dot, the body's
//! bytes). A receiver computes the same, compares in constant time, and refuses a `t` too
//! far from its clock (5 minutes, say): a captured delivery cannot be replayed later. Each
//! delivery also carries `Paastis-Delivery` (its id, the same for every attempt: receivers
//! may ignore one they already processed) and `Paastis-Event` (the event's kind).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::events::{Event, EventKind};

use super::Format;

/// The header holding the signature.
pub const SIGNATURE_HEADER: &str = "paastis-signature";
/// The header holding the delivery's id.
pub const DELIVERY_HEADER: &str = "paastis-delivery";
/// The header holding the event's kind.
pub const EVENT_HEADER: &str = "paastis-event";

/// HMAC-SHA256 (RFC 2104) of `message` keyed with `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The `Paastis-Signature` value of `body` sent at `at` (unix seconds).
pub fn signature(secret: &str, at: u64, body: &[u8]) -> String {
    let mut message = Vec::with_capacity(body.len() + 21);
    message.extend_from_slice(at.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    format!(
        "t={at},v1={}",
        hex(&hmac_sha256(secret.as_bytes(), &message))
    )
}

/// Now, in unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An event's kind name and, for a stop request, its cause's (`plan_limit`, `idle`...).
pub fn kind_of(event: &Event) -> (String, Option<String>) {
    let value = serde_json::to_value(&event.kind).unwrap_or(Value::Null);
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let cause = value
        .get("cause")
        .and_then(|cause| cause.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    (kind, cause)
}

/// Which app, as sentences name it.
fn who(event: &Event) -> String {
    let app = &event.app;
    let mut who = if app.name.is_empty() {
        if app.provider.is_empty() {
            "The configuration".to_owned()
        } else {
            format!("Provider {}", app.provider)
        }
    } else {
        format!("App {} ({})", app.name, app.provider)
    };
    if &*app.space != crate::model::DEFAULT_SPACE {
        who.push_str(&format!(" in space {}", app.space));
    }
    who
}

/// What happened, as a sentence for people.
pub fn sentence(event: &Event) -> String {
    let who = who(event);
    match &event.kind {
        EventKind::Discovered { running } => format!(
            "{who} was discovered ({}).",
            if *running { "running" } else { "stopped" }
        ),
        EventKind::Registered => format!("{who} was found running and is now managed."),
        EventKind::WakeRequested { cause } => format!("{who} is waking up: {cause}."),
        EventKind::Started { duration, .. } => {
            format!("{who} started in {:.1}s.", duration.as_secs_f64())
        }
        EventKind::WakeRefused { reason } => format!("{who} was not woken: {reason}."),
        EventKind::StartFailed { reason } => format!("{who} failed to start: {reason}"),
        EventKind::StopRequested { cause } => format!("{who} is being stopped: {cause}."),
        EventKind::Stopped { .. } => format!("{who} was stopped."),
        EventKind::StopVetoed { reason } => {
            format!("{who} was not stopped: before_stop vetoed it ({reason}).")
        }
        EventKind::HookFailed { hook, reason } => format!("{who}: hook {hook} failed: {reason}"),
        EventKind::StopFailed { reason } => format!("{who} could not be stopped: {reason}"),
        EventKind::Exited { reason } => format!("{who} stopped on its own: {reason}"),
        EventKind::Deleted => format!("{who} no longer exists on its provider."),
        EventKind::Unmanaged { running } => format!(
            "{who} is no longer managed{}.",
            if *running { " (left running)" } else { "" }
        ),
        EventKind::ConfigReloaded { revision, .. } => {
            format!("{who} was reloaded (revision {revision}).")
        }
        EventKind::ConfigRejected { errors } => {
            format!("{who} reload was refused: {} error(s).", errors.len())
        }
        EventKind::ProviderError { message } => format!("{who} failed: {message}"),
    }
}

/// The body of a delivery of `event` in `format`.
pub fn body(format: Format, delivery: &str, webhook: &str, event: &Event) -> Vec<u8> {
    let text = sentence(event);
    let value = match format {
        Format::Slack => json!({ "text": text }),
        Format::Discord => json!({ "content": text }),
        Format::Json => {
            let mut details = serde_json::to_value(&event.kind).unwrap_or(Value::Null);
            let kind = details
                .as_object_mut()
                .and_then(|map| map.remove("kind"))
                .unwrap_or(Value::Null);
            json!({
                "delivery": delivery,
                "webhook": webhook,
                "kind": kind,
                "at": crate::model::rfc3339(event.at),
                "space": &*event.app.space,
                "provider": &*event.app.provider,
                "app": &*event.app.name,
                "details": details,
                "text": text,
            })
        }
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_signature_covers_the_time_and_the_body() {
        let signed = signature("key", 1_700_000_000, b"{}");
        let expected = hex(&hmac_sha256(b"key", b"1700000000.{}"));
        assert_eq!(signed, format!("t=1700000000,v1={expected}"));
    }

    #[test]
    fn chat_formats_say_what_happened() {
        let event = Event {
            at: SystemTime::now(),
            app: crate::model::AppKey::new("default", "local", "web"),
            kind: EventKind::StopVetoed {
                reason: "busy".to_owned(),
            },
        };
        let slack: Value =
            serde_json::from_slice(&body(Format::Slack, "d", "w", &event)).expect("json");
        assert_eq!(
            slack,
            json!({"text": "App web (local) was not stopped: before_stop vetoed it (busy)."})
        );
        let discord: Value =
            serde_json::from_slice(&body(Format::Discord, "d", "w", &event)).expect("json");
        assert!(discord["content"].as_str().is_some());
        let generic: Value =
            serde_json::from_slice(&body(Format::Json, "d1", "w", &event)).expect("json");
        assert_eq!(generic["kind"], "stop_vetoed");
        assert_eq!(generic["details"]["reason"], "busy");
        assert_eq!(generic["delivery"], "d1");
    }
}
