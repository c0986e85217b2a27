//! Savings: what sleeping apps did not cost, estimated from the event history.
//!
//! An app's time asleep runs from each `stopped` event to the next event that says it runs
//! again (a wake asked for, found running, deleted); an app asleep now counts until now.
//! That time × what ran before the stop (its formation: process types, amounts, sizes) gives
//! container-hours, priced with `savings.prices` or a built-in table (only where a public
//! source is cited in docs/src/savings.md), and × `savings.gco2e_per_container_hour`. Unknown
//! prices give hours only: nothing here is invented, and everything is an estimate.
//!
//! This module reads events and computes; it never changes anything. It names no platform:
//! the built-in prices and the grid each platform runs on are facts its provider file states
//! ([`crate::providers::Facts`]). The `savings` section (price tables, currency, gCO2e) is
//! read here, with the shared [`crate::settings::Reader`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::{Event, EventKind};
use crate::model::Formation;
use crate::settings::{Reader, kind};
use crate::store::{EventQuery, Store, StoreError};

/// `savings:` in the config.
#[derive(Debug, Clone, PartialEq)]
pub struct SavingsConfig {
    /// Price per container-hour, by provider type or provider id, then by size as the
    /// platform names it (`*`: any size not listed), in `currency`.
    pub prices: BTreeMap<String, BTreeMap<String, f64>>,
    /// The currency of `prices`.
    pub currency: String,
    /// gCO2e per container-hour, for every provider; `None`: the documented defaults.
    pub gco2e_per_container_hour: Option<f64>,
}

impl Default for SavingsConfig {
    fn default() -> SavingsConfig {
        SavingsConfig {
            prices: BTreeMap::new(),
            currency: "EUR".to_owned(),
            gco2e_per_container_hour: None,
        }
    }
}

/// Energy of one small container for an hour, Wh: 0.5 vCPU at 1.88 W (Cloud Carbon
/// Footprint's 0.61–3.15 W per vCPU at 50% use) + 0.5 GB × 0.392 Wh, × PUE 1.135.
pub const WH_PER_CONTAINER_HOUR: f64 = (0.5 * 1.88 + 0.5 * 0.392) * 1.135;

/// Grid carbon intensity of AWS us-east-1 (EPA eGRID, as Cloud Carbon Footprint uses it),
/// gCO2e/kWh: for every provider whose platform states none.
pub const GRID_US_EAST_G_PER_KWH: f64 = 415.755;

/// The default gCO2e per container-hour for a provider type: on the grid its platform
/// states ([`crate::providers::Facts`]), else [`GRID_US_EAST_G_PER_KWH`].
pub fn default_gco2e(provider_type: &str) -> f64 {
    let grid = crate::providers::registration(provider_type)
        .and_then(|platform| platform.facts.grid_g_per_kwh)
        .unwrap_or(GRID_US_EAST_G_PER_KWH);
    WH_PER_CONTAINER_HOUR * grid / 1000.0
}

/// A price and where it came from.
#[derive(Debug, Clone, PartialEq)]
struct Price {
    /// Per container-hour.
    per_hour: f64,
    /// Its currency.
    currency: String,
}

impl SavingsConfig {
    /// The price of one container-hour of this size, from the config (by provider id, then
    /// type; the size, then `*`), else the built-in table its platform states
    /// ([`crate::providers::Facts`]).
    fn price(&self, provider_id: &str, provider_type: &str, size: Option<&str>) -> Option<Price> {
        let lookup = |table: &BTreeMap<String, f64>| {
            size.and_then(|size| {
                table
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(size))
                    .map(|(_, price)| *price)
            })
            .or_else(|| table.get("*").copied())
        };
        for key in [provider_id, provider_type] {
            if let Some(table) = self.prices.get(key) {
                return lookup(table).map(|per_hour| Price {
                    per_hour,
                    currency: self.currency.clone(),
                });
            }
        }
        let table = crate::providers::registration(provider_type)?
            .facts
            .prices?;
        let size = size?.to_ascii_lowercase();
        table
            .sizes
            .iter()
            .find(|(name, _)| *name == size)
            .map(|(_, per_period)| Price {
                per_hour: per_period / table.period_hours,
                currency: table.currency.to_owned(),
            })
    }

    /// gCO2e per container-hour on this provider type.
    fn gco2e(&self, provider_type: &str) -> f64 {
        self.gco2e_per_container_hour
            .unwrap_or_else(|| default_gco2e(provider_type))
    }
}

/// One stretch of time asleep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    /// When it was stopped.
    pub start: SystemTime,
    /// When it ran again; `None`: asleep now.
    pub end: Option<SystemTime>,
    /// What ran before the stop.
    pub formation: Option<Formation>,
    /// Sizes of its process types.
    pub sizes: BTreeMap<String, String>,
}

/// The event kinds that open or close an interval (what [`collect`] asks the store for).
pub const KINDS: &[&str] = &[
    "stopped",
    "wake_requested",
    "started",
    "registered",
    "discovered",
    "deleted",
    "unmanaged",
];

/// The intervals asleep in one app's events, oldest first (events in any order).
pub fn intervals(events: &[&Event]) -> Vec<Interval> {
    let mut sorted: Vec<&&Event> = events.iter().collect();
    sorted.sort_by_key(|event| event.at);
    let mut intervals: Vec<Interval> = Vec::new();
    let mut open: Option<Interval> = None;
    for event in sorted {
        match &event.kind {
            // A second stop without a wake between (an instance restarted, a stop it did
            // not see end): the first one still counts from its own time.
            EventKind::Stopped { formation, sizes } if open.is_none() => {
                open = Some(Interval {
                    start: event.at,
                    end: None,
                    formation: formation.clone(),
                    sizes: sizes.clone(),
                });
            }
            EventKind::WakeRequested { .. }
            | EventKind::Started { .. }
            | EventKind::Registered
            | EventKind::Discovered { running: true }
            | EventKind::Deleted
            | EventKind::Unmanaged { .. } => {
                if let Some(mut interval) = open.take() {
                    interval.end = Some(event.at);
                    intervals.push(interval);
                }
            }
            _ => {}
        }
    }
    intervals.extend(open);
    intervals
}

/// The part of `interval` inside `[from, to)`, as a duration (`now` ends an open one).
fn overlap(interval: &Interval, from: SystemTime, to: SystemTime, now: SystemTime) -> Duration {
    let end = interval.end.unwrap_or(now).min(to);
    let start = interval.start.max(from);
    end.duration_since(start).unwrap_or_default()
}

/// Money in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Money {
    /// The amount, rounded to 4 decimals.
    pub amount: f64,
    /// ISO 4217 code (`EUR`, `USD`).
    pub currency: String,
}

/// Savings of one app, or of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Saved {
    /// The app's provider id (for a group by provider: the provider).
    pub provider: String,
    /// The app's name (`None` for a group by provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Hours asleep within the period.
    pub hours_asleep: f64,
    /// Container-hours not run (hours × the containers that ran before each stop; one
    /// when the formation is not known).
    pub container_hours: f64,
    /// Money not spent, one entry per currency; empty when no price is known.
    pub money: Vec<Money>,
    /// Container-hours that had no price (their money is not counted).
    pub unpriced_container_hours: f64,
    /// gCO2e not emitted (operational energy only).
    pub gco2e: f64,
}

impl Saved {
    /// Nothing saved yet.
    fn empty(provider: &str, app: Option<String>) -> Saved {
        Saved {
            provider: provider.to_owned(),
            app,
            hours_asleep: 0.0,
            container_hours: 0.0,
            money: Vec::new(),
            unpriced_container_hours: 0.0,
            gco2e: 0.0,
        }
    }
}

/// A savings report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// Start of the period (RFC 3339).
    pub from: String,
    /// End of the period (RFC 3339).
    pub to: String,
    /// `app` or `provider`.
    pub group_by: String,
    /// Always true: these are estimates (see docs/src/savings.md).
    pub estimate: bool,
    /// One line per app or provider that slept in the period, most hours first.
    pub items: Vec<Saved>,
    /// Everything together.
    pub total: Saved,
}

/// What a report needs to know of each app: its provider's id and type.
#[derive(Debug, Clone)]
pub struct AppRef {
    /// Provider id.
    pub provider: String,
    /// Provider type (`scalingo`, `heroku`, ...).
    pub provider_type: String,
    /// App name.
    pub app: String,
}

/// Sums what one app saved over `[from, to)`.
pub fn app_savings(
    config: &SavingsConfig,
    app: &AppRef,
    intervals: &[Interval],
    from: SystemTime,
    to: SystemTime,
    now: SystemTime,
) -> Saved {
    let mut saved = Saved::empty(&app.provider, Some(app.app.clone()));
    let mut money: BTreeMap<String, f64> = BTreeMap::new();
    let gco2e = config.gco2e(&app.provider_type);
    for interval in intervals {
        let hours = overlap(interval, from, to, now).as_secs_f64() / 3600.0;
        if hours <= 0.0 {
            continue;
        }
        saved.hours_asleep += hours;
        let one = Formation::from([("web".to_owned(), 1)]);
        let formation = interval
            .formation
            .as_ref()
            .filter(|f| f.values().any(|n| *n > 0))
            .unwrap_or(&one);
        for (process, amount) in formation {
            let container_hours = hours * f64::from(*amount);
            saved.container_hours += container_hours;
            saved.gco2e += container_hours * gco2e;
            let size = interval.sizes.get(process).map(String::as_str);
            match config.price(&app.provider, &app.provider_type, size) {
                Some(price) => {
                    *money.entry(price.currency).or_default() += container_hours * price.per_hour;
                }
                None => saved.unpriced_container_hours += container_hours,
            }
        }
    }
    saved.money = money
        .into_iter()
        .map(|(currency, amount)| Money { amount, currency })
        .collect();
    saved
}

/// Adds `item` into `total`.
fn add(total: &mut Saved, item: &Saved) {
    total.hours_asleep += item.hours_asleep;
    total.container_hours += item.container_hours;
    total.unpriced_container_hours += item.unpriced_container_hours;
    total.gco2e += item.gco2e;
    for money in &item.money {
        match total
            .money
            .iter_mut()
            .find(|m| m.currency == money.currency)
        {
            Some(sum) => sum.amount += money.amount,
            None => total.money.push(money.clone()),
        }
    }
}

/// Rounds the figures for display: hours and grams to 6 decimals (3.6 ms, 1 µg), money
/// to 4.
fn rounded(mut saved: Saved) -> Saved {
    let round = |value: f64, decimals: i32| {
        let scale = 10f64.powi(decimals);
        (value * scale).round() / scale
    };
    saved.hours_asleep = round(saved.hours_asleep, 6);
    saved.container_hours = round(saved.container_hours, 6);
    saved.unpriced_container_hours = round(saved.unpriced_container_hours, 6);
    saved.gco2e = round(saved.gco2e, 6);
    for money in &mut saved.money {
        money.amount = round(money.amount, 4);
    }
    saved.money.sort_by(|a, b| a.currency.cmp(&b.currency));
    saved
}

/// How a report groups its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One line per app.
    App,
    /// One line per provider account.
    Provider,
}

/// A report over `[from, to)` from every app's intervals.
pub fn report(
    config: &SavingsConfig,
    apps: &[(AppRef, Vec<Interval>)],
    from: SystemTime,
    to: SystemTime,
    now: SystemTime,
    group_by: GroupBy,
) -> Report {
    let mut total = Saved::empty("", None);
    let mut groups: BTreeMap<(String, Option<String>), Saved> = BTreeMap::new();
    for (app, intervals) in apps {
        let saved = app_savings(config, app, intervals, from, to, now);
        add(&mut total, &saved);
        let key = match group_by {
            GroupBy::App => (app.provider.clone(), Some(app.app.clone())),
            GroupBy::Provider => (app.provider.clone(), None),
        };
        let group = groups
            .entry(key.clone())
            .or_insert_with(|| Saved::empty(&key.0, key.1.clone()));
        add(group, &saved);
    }
    let mut items: Vec<Saved> = groups
        .into_values()
        .filter(|saved| saved.hours_asleep > 0.0)
        .map(rounded)
        .collect();
    items.sort_by(|a, b| {
        b.hours_asleep
            .total_cmp(&a.hours_asleep)
            .then_with(|| a.provider.cmp(&b.provider))
            .then_with(|| a.app.cmp(&b.app))
    });
    Report {
        from: crate::model::rfc3339(from),
        to: crate::model::rfc3339(to),
        group_by: match group_by {
            GroupBy::App => "app",
            GroupBy::Provider => "provider",
        }
        .to_owned(),
        estimate: true,
        items,
        total: rounded(total),
    }
}

/// Hours asleep per day (UTC days, oldest first) over the `days` days ending with `now`'s.
pub fn daily_hours(intervals: &[Interval], days: u32, now: SystemTime) -> Vec<f64> {
    let day = Duration::from_secs(86_400);
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let today = SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch - since_epoch % 86_400);
    (0..days)
        .rev()
        .map(|back| {
            let start = today
                .checked_sub(day * back)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let end = start + day;
            intervals
                .iter()
                .map(|interval| overlap(interval, start, end, now).as_secs_f64() / 3600.0)
                .fold(0.0, |sum, hours| sum + hours)
        })
        .collect()
}

/// `0.80 EUR + 0.14 USD`, or `none` when nothing is priced.
pub fn money_text(money: &[Money], none: &str) -> String {
    if money.is_empty() {
        return none.to_owned();
    }
    money
        .iter()
        .map(|m| format!("{:.2} {}", m.amount, m.currency))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// A mass of CO2e: `350 g`, `1.24 kg`, `3.10 t`.
pub fn grams(grams: f64) -> String {
    if grams >= 1_000_000.0 {
        format!("{:.2} t", grams / 1_000_000.0)
    } else if grams >= 1000.0 {
        format!("{:.2} kg", grams / 1000.0)
    } else if grams >= 10.0 {
        format!("{grams:.0} g")
    } else {
        format!("{grams:.2} g")
    }
}

/// Reads from the store the events that make intervals, for every app of `space`, up to
/// `to` (events before `from` too: an app may have been asleep since before it).
pub async fn collect(
    store: &dyn Store,
    space: &str,
    to: SystemTime,
) -> Result<BTreeMap<(String, String), Vec<Interval>>, StoreError> {
    let mut by_app: BTreeMap<(String, String), Vec<Event>> = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = store
            .events(&EventQuery {
                space: Some(space.to_owned()),
                kinds: KINDS.iter().map(|kind| (*kind).to_owned()).collect(),
                until: Some(to),
                limit: Some(crate::store::MAX_EVENTS_LIMIT),
                cursor: cursor.take(),
                ..EventQuery::default()
            })
            .await?;
        for stored in page.events {
            let key = (
                stored.event.app.provider.to_string(),
                stored.event.app.name.to_string(),
            );
            by_app.entry(key).or_default().push(stored.event);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(by_app
        .into_iter()
        .map(|(key, events)| {
            let refs: Vec<&Event> = events.iter().collect();
            (key, intervals(&refs))
        })
        .collect())
}

impl Reader<'_> {
    /// `savings`: price tables, their currency, and gCO2e per container-hour.
    pub(crate) fn savings(&mut self, value: &Value, path: &str) -> crate::savings::SavingsConfig {
        let mut savings = crate::savings::SavingsConfig::default();
        let Some(mut fields) = self.mapping(value, path) else {
            return savings;
        };
        if let Some((v, p)) = fields.take("prices") {
            match v {
                Value::Object(providers) => {
                    for (provider, sizes) in providers {
                        let provider_path = format!("{p}.{provider}");
                        let Value::Object(sizes) = sizes else {
                            self.error(
                                &provider_path,
                                format!(
                                    "expected a mapping of sizes to prices per container-hour \
                                     (e.g. {{M: 0.02}}), found {}",
                                    kind(sizes)
                                ),
                            );
                            continue;
                        };
                        let mut table = std::collections::BTreeMap::new();
                        for (size, price) in sizes {
                            if let Some(price) =
                                self.amount(price, &format!("{provider_path}.{size}"))
                            {
                                table.insert(size.clone(), price);
                            }
                        }
                        savings.prices.insert(provider.clone(), table);
                    }
                }
                other => self.error(
                    &p,
                    format!(
                        "expected a mapping of provider types or ids to price tables, found {}",
                        kind(other)
                    ),
                ),
            }
        }
        if let Some((v, p)) = fields.take("currency")
            && let Some(text) = self.string(v, &p)
        {
            let code = text.trim().to_ascii_uppercase();
            if code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic()) {
                savings.currency = code;
            } else {
                self.error(
                    &p,
                    format!("`{text}` is not a currency code (ISO 4217, e.g. EUR, USD)"),
                );
            }
        }
        savings.gco2e_per_container_hour = match fields.take("gco2e_per_container_hour") {
            None | Some((Value::Null, _)) => None,
            Some((v, p)) => self.amount(v, &p),
        };
        self.finish(fields, &[]);
        savings
    }
}

/// The keys of `savings`, as `Reader::savings` takes them.
pub const SAVINGS_KEYS: &[crate::settings::Key] = {
    use crate::settings::{Key, Kind};
    &[
        Key::new(
            "prices",
            Kind::Map("provider type or id", &Kind::Map("size", &Kind::Amount)),
            "Price per container-hour by size (`*`: any size not listed), per provider type \
             or id; over the built-in tables.",
        ),
        Key::new(
            "currency",
            Kind::Text("ISO 4217 code"),
            "The currency of `prices` (EUR, USD).",
        )
        .default("EUR"),
        Key::new(
            "gco2e_per_container_hour",
            Kind::Amount,
            "Grams of CO2e one container-hour emits (default: from the platform's grid).",
        ),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::WakeCause;
    use crate::model::AppKey;

    const H: u64 = 3600;

    fn at(hours: f64) -> SystemTime {
        // A Monday, 2026-06-01T00:00:00Z.
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_780_272_000)
            + Duration::from_secs_f64(hours * H as f64)
    }

    fn event(name: &str, hours: f64, kind: EventKind) -> Event {
        Event {
            at: at(hours),
            app: AppKey::new("default", "p", name),
            kind,
        }
    }

    fn stopped(formation: &[(&str, u32)], sizes: &[(&str, &str)]) -> EventKind {
        EventKind::Stopped {
            formation: (!formation.is_empty()).then(|| {
                formation
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), *v))
                    .collect()
            }),
            sizes: sizes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn woken() -> EventKind {
        EventKind::WakeRequested {
            cause: WakeCause::Api { by: None },
        }
    }

    fn app(name: &str, provider_type: &str) -> AppRef {
        AppRef {
            provider: "p".to_owned(),
            provider_type: provider_type.to_owned(),
            app: name.to_owned(),
        }
    }

    #[test]
    fn intervals_run_from_a_stop_to_the_next_sign_of_life() {
        let events = [
            event("a", 12.0, woken()),
            event("a", 0.0, stopped(&[("web", 2)], &[])),
            // A second stop inside the same sleep (another instance's record): ignored.
            event("a", 1.0, stopped(&[("web", 2)], &[])),
            event("a", 14.0, stopped(&[], &[])),
            event("a", 15.0, EventKind::Exited { reason: "x".into() }),
            event("a", 20.0, EventKind::Registered),
            event("a", 30.0, stopped(&[], &[])),
        ];
        let refs: Vec<&Event> = events.iter().collect();
        let found = intervals(&refs);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!((found[0].start, found[0].end), (at(0.0), Some(at(12.0))));
        assert_eq!((found[1].start, found[1].end), (at(14.0), Some(at(20.0))));
        assert_eq!((found[2].start, found[2].end), (at(30.0), None));
    }

    #[test]
    fn a_scripted_scenario_gives_exact_hours_money_and_co2e() {
        let config = SavingsConfig {
            prices: BTreeMap::from([(
                "scalingo".to_owned(),
                BTreeMap::from([("M".to_owned(), 0.02), ("L".to_owned(), 0.04)]),
            )]),
            currency: "EUR".to_owned(),
            gco2e_per_container_hour: Some(0.5),
        };
        // front: asleep 0h-10h (web 2 × M) and 20h-now (open, web 1 × L); now = 30h.
        // heroku-app: asleep 5h-9h with web 1 Standard-1X (built-in USD price) and
        // worker 1 of an unknown size (unpriced).
        // bare: asleep 2h-6h, formation unknown (one container, no price).
        let front = [
            event("front", 0.0, stopped(&[("web", 2)], &[("web", "M")])),
            event("front", 10.0, woken()),
            event("front", 20.0, stopped(&[("web", 1)], &[("web", "L")])),
        ];
        let hero = [
            event(
                "hero",
                5.0,
                stopped(&[("web", 1), ("worker", 1)], &[("web", "Standard-1X")]),
            ),
            event("hero", 9.0, woken()),
        ];
        let bare = [
            event("bare", 2.0, stopped(&[], &[])),
            event("bare", 6.0, woken()),
        ];
        let of = |events: &[Event]| intervals(&events.iter().collect::<Vec<_>>());
        let apps = vec![
            (app("front", "scalingo"), of(&front)),
            (app("hero", "heroku"), of(&hero)),
            (app("bare", "scalingo-like"), of(&bare)),
        ];
        let report = report(&config, &apps, at(0.0), at(48.0), at(30.0), GroupBy::App);
        let line = |name: &str| {
            report
                .items
                .iter()
                .find(|s| s.app.as_deref() == Some(name))
                .expect("line")
                .clone()
        };
        let front = line("front");
        assert_eq!(front.hours_asleep, 20.0);
        assert_eq!(front.container_hours, 30.0);
        // 10h × 2 × 0.02 + 10h × 1 × 0.04 = 0.8 EUR.
        assert_eq!(
            front.money,
            vec![Money {
                amount: 0.8,
                currency: "EUR".into()
            }]
        );
        assert_eq!(front.gco2e, 15.0);
        let hero = line("hero");
        assert_eq!(hero.hours_asleep, 4.0);
        assert_eq!(hero.container_hours, 8.0);
        // 4h × 25 USD / 720 h = 0.1389 USD; the worker's 4 container-hours unpriced.
        assert_eq!(
            hero.money,
            vec![Money {
                amount: 0.1389,
                currency: "USD".into()
            }]
        );
        assert_eq!(hero.unpriced_container_hours, 4.0);
        let bare = line("bare");
        assert_eq!((bare.hours_asleep, bare.container_hours), (4.0, 4.0));
        assert!(bare.money.is_empty());
        assert_eq!(bare.unpriced_container_hours, 4.0);
        // Totals, both currencies side by side.
        assert_eq!(report.total.hours_asleep, 28.0);
        assert_eq!(report.total.container_hours, 42.0);
        assert_eq!(report.total.gco2e, 21.0);
        assert_eq!(
            report.total.money,
            vec![
                Money {
                    amount: 0.8,
                    currency: "EUR".into()
                },
                Money {
                    amount: 0.1389,
                    currency: "USD".into()
                },
            ]
        );
        assert_eq!(
            report.items[0].app.as_deref(),
            Some("front"),
            "most hours first"
        );

        // A window that cuts intervals: 8h-22h → front 2h (×2 M) + 2h (open, ×1 L),
        // hero 1h, bare 0.
        let cut = super::report(
            &config,
            &apps,
            at(8.0),
            at(22.0),
            at(30.0),
            GroupBy::Provider,
        );
        assert_eq!(cut.items.len(), 1);
        assert_eq!(cut.total.hours_asleep, 5.0);
        assert_eq!(cut.total.container_hours, 2.0 * 2.0 + 2.0 + 2.0);
        assert_eq!(cut.items[0].app, None);
        // The open interval stops at now, not at the end of the period.
        let later = super::report(&config, &apps, at(29.0), at(100.0), at(30.0), GroupBy::App);
        assert_eq!(later.total.hours_asleep, 1.0);
    }

    #[test]
    fn defaults_and_lookups() {
        let config = SavingsConfig::default();
        // Heroku's built-in table, case as the API writes it; Eco has no price.
        let price = config
            .price("h", "heroku", Some("Standard-2X"))
            .expect("price");
        assert_eq!(price.currency, "USD");
        assert!((price.per_hour - 50.0 / 720.0).abs() < 1e-12);
        assert_eq!(config.price("h", "heroku", Some("Eco")), None);
        assert_eq!(config.price("s", "scalingo", Some("M")), None);
        // A configured table replaces the built-in one; `*` is any size.
        let mut config = SavingsConfig::default();
        config
            .prices
            .insert("h".into(), BTreeMap::from([("*".to_owned(), 0.01)]));
        assert_eq!(
            config
                .price("h", "heroku", Some("Standard-2X"))
                .map(|p| p.currency),
            Some("EUR".to_owned())
        );
        // CO2e defaults: 1.289 Wh per container-hour on the French or the US grid.
        assert!((WH_PER_CONTAINER_HOUR - 1.2893).abs() < 1e-3);
        assert!((default_gco2e("scalingo") - 0.04126).abs() < 1e-4);
        assert!((default_gco2e("heroku") - 0.5360).abs() < 1e-3);
    }

    #[test]
    fn daily_hours_split_intervals_by_day() {
        let events = [
            event("a", 20.0, stopped(&[], &[])),
            event("a", 30.0, woken()),
        ];
        let found = intervals(&events.iter().collect::<Vec<_>>());
        // now: day 2, 12:00 → days 0, 1, 2.
        let days = daily_hours(&found, 3, at(60.0));
        assert_eq!(days, vec![4.0, 6.0, 0.0]);
    }
}
