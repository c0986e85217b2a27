//! Schedules (`paastis::schedules`): cron expressions read as the config validator reads
//! them (`parse_cron`), keep-awake windows (`HH:MM`, day lists) and time zones, then a tracker ticking
//! through time. One field per line: sleep cron, wake cron, window from, window to, days,
//! time zone, Unix time of the first tick:
//!
//! ```text
//! 0 20 * * 1-5
//! 0 8 * * 1-5
//! 08:00
//! 19:00
//! mon-fri
//! Europe/Paris
//! 1772409600
//! ```
//!
//! Checks: times of day stay within the day; day lists ignore ASCII case; a window never
//! opens and closes at once; a cron's next time is after now and its previous one not; the
//! tracker reports only its schedules, an open sleep window began before now and ends after.

#![no_main]

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use libfuzzer_sys::fuzz_target;
use paastis::model::{Pattern, Plain};
use paastis::schedules::{Days, Fired, Schedule, Tracker, Window, parse_cron, time_of_day};

/// Latest first tick: 2100-01-01.
const LATEST: i64 = 4_102_444_800;

/// The cron as the config validator reads it; `None` also for one that never comes again
/// (`0 0 31 2 *`): croner searches up to the year 5000 for it, seconds per search, and
/// the tracker would only repeat that search.
fn cron(text: &str, now: DateTime<Utc>, timezone: Tz) -> Option<croner::Cron> {
    if text.trim().is_empty() {
        return None;
    }
    let cron = parse_cron(text).ok()?;
    let local = now.with_timezone(&timezone);
    let next = cron.find_next_occurrence(&local, false).ok()?;
    assert!(next > local, "{text:?}: next {next} is not after {local}");
    if let Ok(previous) = cron.find_previous_occurrence(&local, true) {
        assert!(
            previous <= local,
            "{text:?}: previous {previous} is after {local}"
        );
    }
    Some(cron)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let mut line = || lines.next().unwrap_or_default();
    let (sleep, wake, from, to, days, zone, at) =
        (line(), line(), line(), line(), line(), line(), line());
    let timezone: Tz = zone.trim().parse().unwrap_or(Tz::UTC);
    let seconds = at.trim().parse::<i64>().unwrap_or(1_772_409_600);
    let Some(now) = DateTime::<Utc>::from_timestamp(seconds.rem_euclid(LATEST), 0) else {
        return;
    };

    let opens = time_of_day(from, false);
    if let Ok(minutes) = opens {
        assert!(minutes < 24 * 60, "{from:?} -> {minutes}");
    }
    let closes = time_of_day(to, true);
    if let Ok(minutes) = closes {
        assert!(minutes <= 24 * 60, "{to:?} -> {minutes}");
    }
    let parsed_days = Days::parse(days);
    assert_eq!(
        parsed_days,
        Days::parse(&days.to_ascii_uppercase()),
        "{days:?}"
    );
    let window = Window::new(from, to, parsed_days.as_ref().copied().unwrap_or(Days::ALL));
    if let Ok(window) = &window {
        assert_ne!(window.from, window.to);
    }

    let schedule = Schedule {
        apps: vec![Pattern::parse("*", Plain::Whole).expect("a glob")],
        label: "*".to_owned(),
        sleep: cron(sleep, now, timezone),
        wake: cron(wake, now, timezone),
        keep_awake: window.into_iter().collect(),
        timezone,
        wake_on_request: true,
    };
    let tracker = Tracker::new(vec![schedule]);
    for step in [0, 1, 60, 3_600, 86_400, 7 * 86_400] {
        let at = now + Duration::seconds(step);
        let fired = tracker.tick(at);
        for one in fired {
            let (Fired::Sleep(index) | Fired::Wake(index)) = one;
            assert_eq!(index, 0);
        }
        let snapshot = tracker.snapshot();
        assert_eq!(snapshot.len(), 1);
        assert_eq!(
            snapshot[0].keep_awake,
            tracker.schedules()[0].keeps_awake(at)
        );
        if let Some(window) = snapshot[0].sleeping {
            assert!(
                window.since <= at,
                "a sleep window from {} at {at}",
                window.since
            );
            if let Some(until) = window.until {
                assert!(
                    until > at,
                    "a sleep window that ended at {until} still open at {at}"
                );
            }
        }
    }
});
