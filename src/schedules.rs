//! Schedules: the `schedules:` entries, and where each one stands at a given wall time.
//!
//! A schedule puts its apps to sleep at its `sleep` times, pre-warms them at its `wake`
//! times, and keeps them awake inside its `keep_awake` windows, in its own IANA time zone
//! (DST-correct: a daily 08:00 is 08:00 local time on both sides of a change). Between a
//! `sleep` time and the next `wake` time (or keep-awake window) the schedule is *in its
//! sleep window*: a request still wakes an app then unless `wake_on_request: false`.
//!
//! This module only tells: [`Tracker::tick`] takes the wall time from its caller (the
//! engine's clock; simulated times in tests), says which times came, and publishes a
//! [`Snapshot`] the request path and the idle check read without locks. Starting and
//! stopping is the lifecycle's work (precedence: pin > keep-awake > sleep > idle). The
//! `schedules` section (with its `keep_awake` windows) is read here, with the shared
//! [`crate::settings::Reader`].

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::model::{Pattern, Plain};
use crate::settings::{Fields, Reader, kind};

/// One `schedules:` entry, validated.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Which apps it applies to (matched on the app's name; any of them).
    pub apps: Vec<Pattern>,
    /// Its `apps` as written, naming it in events and pages.
    pub label: String,
    /// When to put its apps to sleep (force stop, whatever their idle time).
    pub sleep: Option<croner::Cron>,
    /// When to wake its apps ahead of use.
    pub wake: Option<croner::Cron>,
    /// Local times during which its apps are not stopped (and are woken on entering).
    pub keep_awake: Vec<Window>,
    /// The time zone its crons and windows are read in.
    pub timezone: Tz,
    /// Whether a request inside the sleep window wakes an app (default true).
    pub wake_on_request: bool,
}

impl Schedule {
    /// Whether the schedule applies to this app.
    pub fn matches(&self, name: &str) -> bool {
        self.apps.iter().any(|pattern| pattern.matches(name))
    }

    /// Whether `at` is inside one of its keep-awake windows.
    pub fn keeps_awake(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.timezone);
        self.keep_awake.iter().any(|window| window.contains(&local))
    }

    /// The start of its latest sleep window still open at `at`, and that window's end
    /// (`None`: no wake time or window ever ends it).
    fn sleep_window(&self, at: DateTime<Utc>) -> Option<SleepWindow> {
        let since = self.previous(self.sleep.as_ref(), at)?;
        let until = self.window_end(since);
        match until {
            Some(until) if until <= at => None,
            _ => Some(SleepWindow { since, until }),
        }
    }

    /// When a sleep window that began at `since` ends: the next wake time or keep-awake
    /// window start after it, whichever comes first.
    fn window_end(&self, since: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = since.with_timezone(&self.timezone);
        let wake = self
            .wake
            .as_ref()
            .and_then(|cron| cron.find_next_occurrence(&local, false).ok())
            .map(|at| at.with_timezone(&Utc));
        let window = self
            .keep_awake
            .iter()
            .filter_map(|window| window.next_start(&local))
            .min();
        match (wake, window) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn previous(&self, cron: Option<&croner::Cron>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.timezone);
        cron?
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|at| at.with_timezone(&Utc))
    }

    fn next(&self, cron: Option<&croner::Cron>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone);
        cron?
            .find_next_occurrence(&local, false)
            .ok()
            .map(|at| at.with_timezone(&Utc))
    }
}

/// Days of the week, Monday first (bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(u8);

impl Days {
    /// Every day.
    pub const ALL: Days = Days(0x7f);

    /// Parses `mon-fri`, `sat,sun`, `mon-wed,fri`, `daily`, `*`, `weekdays`, `weekends`.
    pub fn parse(text: &str) -> Result<Days, String> {
        let text = text.trim().to_ascii_lowercase();
        match text.as_str() {
            "" => return Err("must not be empty".to_owned()),
            "*" | "daily" | "all" | "every day" => return Ok(Days::ALL),
            "weekdays" => return Ok(Days(0x1f)),
            "weekends" => return Ok(Days(0x60)),
            _ => {}
        }
        let mut bits = 0u8;
        for part in text.split(',') {
            let part = part.trim();
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (day_index(a.trim())?, day_index(b.trim())?),
                None => {
                    let day = day_index(part)?;
                    (day, day)
                }
            };
            // A range may wrap around the week end: `fri-mon`.
            let mut day = first;
            loop {
                bits |= 1 << day;
                if day == last {
                    break;
                }
                day = (day + 1) % 7;
            }
        }
        Ok(Days(bits))
    }

    fn has(self, day: chrono::Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }
}

fn day_index(text: &str) -> Result<u8, String> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let short: String = text.chars().take(3).collect();
    NAMES
        .iter()
        .position(|name| *name == short && text.len() >= 3)
        .and_then(|index| u8::try_from(index).ok())
        .ok_or_else(|| format!("`{text}` is not a day (mon, tue, wed, thu, fri, sat, sun)"))
}

/// A keep-awake window: local times `from` to `to` on some days. A window whose `to` is
/// before its `from` ends the next day (`{from: "22:00", to: "02:00"}`); `days` are the
/// days it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Minutes after local midnight it opens (0..1440).
    pub from: u32,
    /// Minutes after local midnight it closes (1..=1440; 1440 is `24:00`).
    pub to: u32,
    /// The days it opens on.
    pub days: Days,
}

impl Window {
    /// A window from `HH:MM` texts.
    pub fn new(from: &str, to: &str, days: Days) -> Result<Window, String> {
        Window::from_minutes(time_of_day(from, false)?, time_of_day(to, true)?, days)
    }

    /// A window from minutes after midnight (see [`time_of_day`]).
    pub fn from_minutes(from: u32, to: u32, days: Days) -> Result<Window, String> {
        if from == to {
            return Err("`from` and `to` are the same time: the window would be empty".into());
        }
        Ok(Window { from, to, days })
    }

    fn contains<T: TimeZone>(&self, local: &DateTime<T>) -> bool {
        let minute = local.hour() * 60 + local.minute();
        let day = local.weekday();
        if self.from < self.to {
            self.days.has(day) && (self.from..self.to).contains(&minute)
        } else {
            (self.days.has(day) && minute >= self.from)
                || (self.days.has(day.pred()) && minute < self.to)
        }
    }

    /// The first time after `after` the window opens.
    fn next_start(&self, after: &DateTime<Tz>) -> Option<DateTime<Utc>> {
        let tz = after.timezone();
        let date = after.date_naive();
        (0..=8).find_map(|offset| {
            let day: NaiveDate = date.checked_add_signed(ChronoDuration::days(offset))?;
            if !self.days.has(day.weekday()) {
                return None;
            }
            let naive = day.and_hms_opt(self.from / 60, self.from % 60, 0)?;
            // In a DST gap the window opens when the clocks do.
            let start = tz
                .from_local_datetime(&naive)
                .earliest()
                .or_else(|| {
                    tz.from_local_datetime(&(naive + ChronoDuration::hours(1)))
                        .earliest()
                })?
                .with_timezone(&Utc);
            (start > after.with_timezone(&Utc)).then_some(start)
        })
    }
}

/// `HH:MM` as minutes after midnight; `24:00` only where `end` allows it.
pub fn time_of_day(text: &str, end: bool) -> Result<u32, String> {
    let bad = || format!("`{text}` is not a time of day (expected HH:MM, e.g. 08:00)");
    let (hours, mins) = text.trim().split_once(':').ok_or_else(bad)?;
    let hours: u32 = hours.parse().map_err(|_| bad())?;
    let mins: u32 = mins.parse().map_err(|_| bad())?;
    if mins >= 60 || hours > 24 || (hours == 24 && (mins != 0 || !end)) {
        return Err(bad());
    }
    Ok(hours * 60 + mins)
}

/// A cron expression as the config reads it (`sleep`, `wake`, `discovery.cron`): 5 fields,
/// or 6 with seconds first. A list with an empty item (`1,,2`, `,`) is refused: the parser
/// would skip it, and a field of nothing but such items matches no time at all (each search
/// for the next time would then scan the calendar up to the year 5000, for a minute).
pub fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    const EXPECTED: &str =
        "expected 5 fields, or 6 with seconds first, e.g. \"0 20 * * 1-5\" or \"*/30 * * * * *\"";
    if text
        .split_whitespace()
        .any(|field| field.split(',').any(str::is_empty))
    {
        return Err(format!(
            "`{text}` is not a cron expression (a list with an empty item; {EXPECTED})"
        ));
    }
    croner::parser::CronParser::new()
        .parse(text)
        .map_err(|error| format!("`{text}` is not a cron expression ({error}; {EXPECTED})"))
}

/// An open sleep window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SleepWindow {
    /// When it began (the `sleep` time).
    pub since: DateTime<Utc>,
    /// When it ends (`None`: nothing ends it but a request or the API).
    pub until: Option<DateTime<Utc>>,
}

/// Where one schedule stands now.
#[derive(Debug, Clone, Default)]
pub struct Now {
    /// Inside a keep-awake window.
    pub keep_awake: bool,
    /// Inside a sleep window.
    pub sleeping: Option<SleepWindow>,
}

/// Why a request does not wake an app: its schedule's sleep window, and when it ends.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The schedule (its `apps`).
    pub schedule: String,
    /// When the app is back (`None`: nothing brings it back but the API).
    pub until: Option<DateTime<Utc>>,
    /// The schedule's time zone, to say `until` in.
    pub timezone: Tz,
}

/// Every schedule's [`Now`], in config order; replaced whole at each tick.
pub type Snapshot = Arc<Vec<Now>>;

/// A time that came at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// The schedule at this index reached a `sleep` time.
    Sleep(usize),
    /// The schedule at this index reached a `wake` time, or entered a keep-awake window.
    Wake(usize),
}

/// What one schedule expects next.
#[derive(Debug)]
struct Next {
    /// The next `sleep` time.
    sleep: Option<DateTime<Utc>>,
    /// The next `wake` time.
    wake: Option<DateTime<Utc>>,
    /// The sleep window open at the previous tick (found once, then followed: no search
    /// through past times at every tick).
    window: Option<SleepWindow>,
}

/// The schedules and their progress through time.
#[derive(Debug)]
pub struct Tracker {
    /// The entries.
    schedules: Arc<[Schedule]>,
    /// What each expects next; `None` before the first tick.
    next: std::sync::Mutex<Option<Vec<Next>>>,
    /// The latest [`Now`] of each, for lock-free readers.
    snapshot: ArcSwap<Vec<Now>>,
}

impl Tracker {
    /// A tracker for these schedules; nothing is known until the first [`Tracker::tick`].
    pub fn new(schedules: Vec<Schedule>) -> Tracker {
        let count = schedules.len();
        Tracker {
            schedules: schedules.into(),
            next: std::sync::Mutex::new(None),
            snapshot: ArcSwap::from_pointee(vec![Now::default(); count]),
        }
    }

    /// The schedules.
    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    /// Whether there is any.
    pub fn is_empty(&self) -> bool {
        self.schedules.is_empty()
    }

    /// The indices of the schedules that apply to this app.
    pub fn matching(&self, name: &str) -> Vec<usize> {
        self.schedules
            .iter()
            .enumerate()
            .filter(|(_, schedule)| schedule.matches(name))
            .map(|(index, _)| index)
            .collect()
    }

    /// Where every schedule stood at the latest tick.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.load_full()
    }

    /// Moves to `now`: returns the `sleep` and `wake` times that came since the previous
    /// tick (at most one of each per schedule; when both came, only the later counts), and
    /// keep-awake windows entered (on the first tick: being inside one). Times missed
    /// while the engine was not running are not caught up, but sleep windows are levels:
    /// the first tick inside one reports it in the snapshot.
    pub fn tick(&self, now: DateTime<Utc>) -> Vec<Fired> {
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous = self.snapshot.load();
        let first = next.is_none();
        let expected = next.get_or_insert_with(|| {
            self.schedules
                .iter()
                .map(|schedule| Next {
                    sleep: schedule.next(schedule.sleep.as_ref(), now),
                    wake: schedule.next(schedule.wake.as_ref(), now),
                    window: schedule.sleep_window(now),
                })
                .collect()
        });
        let mut fired = Vec::new();
        let mut snapshot = Vec::with_capacity(self.schedules.len());
        for (index, (schedule, expected)) in self.schedules.iter().zip(expected).enumerate() {
            // The latest time of each that came (ticks may be far apart).
            let slept = expected.sleep.filter(|at| *at <= now).map(|at| {
                schedule
                    .previous(schedule.sleep.as_ref(), now)
                    .unwrap_or(at)
            });
            let woke = expected
                .wake
                .filter(|at| *at <= now)
                .map(|at| schedule.previous(schedule.wake.as_ref(), now).unwrap_or(at));
            if slept.is_some() {
                expected.sleep = schedule.next(schedule.sleep.as_ref(), now);
            }
            if woke.is_some() {
                expected.wake = schedule.next(schedule.wake.as_ref(), now);
            }
            match (slept, woke) {
                (Some(s), Some(w)) if w >= s => fired.push(Fired::Wake(index)),
                (Some(since), _) => {
                    fired.push(Fired::Sleep(index));
                    expected.window = Some(SleepWindow {
                        since,
                        until: schedule.window_end(since),
                    });
                }
                (None, Some(_)) => fired.push(Fired::Wake(index)),
                (None, None) => {}
            }
            if expected
                .window
                .is_some_and(|window| window.until.is_some_and(|until| until <= now))
            {
                expected.window = None;
            }
            let keep_awake = schedule.keeps_awake(now);
            let was_awake = !first && previous.get(index).is_some_and(|now| now.keep_awake);
            if keep_awake && !was_awake && woke.is_none() {
                fired.push(Fired::Wake(index));
            }
            snapshot.push(Now {
                keep_awake,
                sleeping: expected.window,
            });
        }
        self.snapshot.store(Arc::new(snapshot));
        fired
    }
}

/// `at` in the schedule's time zone, for people: `Mon 08:00 (Europe/Paris)`.
pub fn local_text(at: DateTime<Utc>, timezone: Tz) -> String {
    let local = at.with_timezone(&timezone);
    format!("{} ({})", local.format("%a %d %b %H:%M"), timezone.name())
}

impl Reader<'_> {
    /// A cron expression: 5 fields, or 6 with seconds first
    /// ([`crate::schedules::parse_cron`]).
    pub(crate) fn cron(&mut self, value: &Value, path: &str) -> Option<croner::Cron> {
        let text = self.string(value, path)?;
        crate::schedules::parse_cron(&text)
            .map_err(|message| self.error(path, message))
            .ok()
    }

    /// `schedules`: a list of sleep / wake / keep-awake entries.
    pub(crate) fn schedules(
        &mut self,
        value: &Value,
        path: &str,
    ) -> Vec<crate::schedules::Schedule> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut schedules = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(mut fields) = self.mapping(item, &item_path) else {
                continue;
            };
            let errors_before = self.errors.len();
            let (apps, label) = match fields.take("apps") {
                Some((Value::String(text), p)) => (
                    self.patterns(
                        &Value::Array(vec![Value::String(text.clone())]),
                        &p,
                        Plain::Whole,
                    ),
                    text.clone(),
                ),
                Some((v, p)) => {
                    let patterns = self.patterns(v, &p, Plain::Whole);
                    let label = patterns
                        .iter()
                        .map(|pattern| pattern.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    (patterns, label)
                }
                None => {
                    self.error(
                        &format!("{item_path}.apps"),
                        "is required (app names: a glob such as `review-*`, `re:` for a regex, or a list)",
                    );
                    (Vec::new(), String::new())
                }
            };
            let sleep = fields.take("sleep").and_then(|(v, p)| self.cron(v, &p));
            let wake = fields.take("wake").and_then(|(v, p)| self.cron(v, &p));
            let keep_awake = fields
                .take("keep_awake")
                .map(|(v, p)| self.windows(v, &p))
                .unwrap_or_default();
            let timezone = match fields.take("timezone") {
                None | Some((Value::Null, _)) => chrono_tz::Tz::UTC,
                Some((v, p)) => self
                    .string(v, &p)
                    .and_then(|text| match text.trim().parse::<chrono_tz::Tz>() {
                        Ok(tz) => Some(tz),
                        Err(_) => {
                            self.error(
                                &p,
                                format!(
                                    "`{text}` is not a time zone (expected an IANA name such as \
                                     Europe/Paris or America/New_York, or UTC)"
                                ),
                            );
                            None
                        }
                    })
                    .unwrap_or(chrono_tz::Tz::UTC),
            };
            let wake_on_request = match fields.take("wake_on_request") {
                None | Some((Value::Null, _)) => true,
                Some((Value::Bool(b), _)) => *b,
                Some((v, p)) => {
                    self.error(&p, format!("expected true or false, found {}", kind(v)));
                    true
                }
            };
            if sleep.is_none()
                && wake.is_none()
                && keep_awake.is_empty()
                && self.errors.len() == errors_before
            {
                self.error(
                    &item_path,
                    "does nothing: give `sleep`, `wake` or `keep_awake`",
                );
            }
            self.finish(fields, &[]);
            if self.errors.len() == errors_before {
                schedules.push(crate::schedules::Schedule {
                    apps,
                    label,
                    sleep,
                    wake,
                    keep_awake,
                    timezone,
                    wake_on_request,
                });
            }
        }
        schedules
    }

    /// `keep_awake`: a list of `{from: "08:00", to: "19:00", days: mon-fri}`.
    fn windows(&mut self, value: &Value, path: &str) -> Vec<crate::schedules::Window> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut windows = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(mut fields) = self.mapping(item, &item_path) else {
                continue;
            };
            let mut time = |fields: &mut Fields<'_>, key: &str| match fields.take(key) {
                Some((v, p)) => self.string(v, &p).and_then(|text| {
                    crate::schedules::time_of_day(&text, key == "to")
                        .map_err(|message| self.error(&p, message))
                        .ok()
                }),
                None => {
                    self.error(
                        &format!("{item_path}.{key}"),
                        "is required (HH:MM, local time)",
                    );
                    None
                }
            };
            let from = time(&mut fields, "from");
            let to = time(&mut fields, "to");
            let days = match fields.take("days") {
                None | Some((Value::Null, _)) => Some(crate::schedules::Days::ALL),
                Some((Value::Array(items), p)) => {
                    let names: Vec<String> = items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect();
                    if names.len() != items.len() {
                        self.error(&p, "expected day names such as mon, tue or a range mon-fri");
                        None
                    } else {
                        crate::schedules::Days::parse(&names.join(","))
                            .map_err(|message| self.error(&p, message))
                            .ok()
                    }
                }
                Some((v, p)) => self.string(v, &p).and_then(|text| {
                    crate::schedules::Days::parse(&text)
                        .map_err(|message| self.error(&p, message))
                        .ok()
                }),
            };
            self.finish(fields, &[]);
            if let (Some(from), Some(to), Some(days)) = (from, to, days) {
                match crate::schedules::Window::from_minutes(from, to, days) {
                    Ok(window) => windows.push(window),
                    Err(message) => self.error(&item_path, message),
                }
            }
        }
        windows
    }
}

/// The keys of one `keep_awake` window, as `Reader::windows` takes them.
pub const WINDOW_KEYS: &[crate::settings::Key] = {
    use crate::settings::{Key, Kind};
    &[
        Key::new("from", Kind::Text("HH:MM"), "Start, local time.").required(),
        Key::new(
            "to",
            Kind::Text("HH:MM"),
            "End, local time; before `from`: it ends the next day.",
        )
        .required(),
        Key::new(
            "days",
            Kind::OneOrList(&Kind::Text("days")),
            "mon-fri, sat,sun, fri-mon, [mon, wed], daily, weekdays.",
        )
        .default("daily"),
    ]
};

/// The keys of one `schedules:` entry, as `Reader::schedules` takes them.
pub const SCHEDULE_KEYS: &[crate::settings::Key] = {
    use crate::settings::{Key, Kind};
    &[
        Key::new(
            "apps",
            Kind::OneOrList(&Kind::Text("pattern")),
            "App names: a glob such as `review-*`, `re:` for a regex, or a list of them.",
        )
        .required(),
        Key::new(
            "sleep",
            Kind::Text("cron"),
            "Cron (5 fields, or 6 with seconds first): stop them at once, whatever their \
             idle time.",
        ),
        Key::new(
            "wake",
            Kind::Text("cron"),
            "Cron: wake them ahead of use (their linked apps too).",
        ),
        Key::new(
            "keep_awake",
            Kind::List(&Kind::Section(&[WINDOW_KEYS])),
            "Local times when they are never stopped; entering a window wakes them.",
        ),
        Key::new(
            "timezone",
            Kind::Text("IANA time zone"),
            "The time zone of the entry (Europe/Paris, America/New_York).",
        )
        .default("UTC"),
        Key::new(
            "wake_on_request",
            Kind::Boolean,
            "false: inside the sleep window requests get 503 with the time the app is back.",
        )
        .default("true"),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Plain;
    use std::collections::BTreeMap;

    fn cron(text: &str) -> croner::Cron {
        croner::parser::CronParser::new().parse(text).expect("cron")
    }

    fn schedule(sleep: Option<&str>, wake: Option<&str>, tz: Tz) -> Schedule {
        Schedule {
            apps: vec![Pattern::parse("*", Plain::Whole).expect("glob")],
            label: "*".to_owned(),
            sleep: sleep.map(cron),
            wake: wake.map(cron),
            keep_awake: Vec::new(),
            timezone: tz,
            wake_on_request: true,
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    /// Ticks every minute from `from` for `days`, returning each fired time with the tick.
    fn run(tracker: &Tracker, from: DateTime<Utc>, days: i64) -> Vec<(DateTime<Utc>, Fired)> {
        let mut fired = Vec::new();
        let mut at = from;
        while at < from + ChronoDuration::days(days) {
            for one in tracker.tick(at) {
                fired.push((at, one));
            }
            at += ChronoDuration::minutes(1);
        }
        fired
    }

    #[test]
    fn days_and_windows_parse() {
        assert_eq!(Days::parse("mon-fri"), Ok(Days(0x1f)));
        assert_eq!(Days::parse("sat,sun"), Ok(Days(0x60)));
        assert_eq!(Days::parse("fri-mon"), Ok(Days(0x10 | 0x20 | 0x40 | 0x01)));
        assert_eq!(Days::parse("Monday"), Ok(Days(1)));
        assert!(Days::parse("mo").is_err());
        assert!(Days::parse("funday").is_err());
        assert!(Window::new("08:00", "19:00", Days::ALL).is_ok());
        assert!(Window::new("22:00", "24:00", Days::ALL).is_ok());
        for (from, to) in [
            ("8h", "19:00"),
            ("08:00", "08:00"),
            ("24:00", "02:00"),
            ("25:00", "1:00"),
        ] {
            assert!(Window::new(from, to, Days::ALL).is_err(), "{from}-{to}");
        }
    }

    #[test]
    fn windows_contain_their_local_times_also_overnight() {
        let paris = chrono_tz::Europe::Paris;
        let day =
            Window::new("08:00", "19:00", Days::parse("mon-fri").expect("days")).expect("window");
        // Monday 2026-03-02, in Paris (UTC+1).
        let at = |text: &str| utc(text).with_timezone(&paris);
        assert!(!day.contains(&at("2026-03-02T06:59:00Z")));
        assert!(day.contains(&at("2026-03-02T07:00:00Z")));
        assert!(day.contains(&at("2026-03-02T17:59:00Z")));
        assert!(!day.contains(&at("2026-03-02T18:00:00Z")));
        assert!(!day.contains(&at("2026-03-07T10:00:00Z")), "saturday");
        let night =
            Window::new("22:00", "02:00", Days::parse("fri").expect("days")).expect("window");
        assert!(night.contains(&at("2026-03-06T21:30:00Z")), "friday 22:30");
        assert!(
            night.contains(&at("2026-03-07T00:30:00Z")),
            "saturday 01:30"
        );
        assert!(
            !night.contains(&at("2026-03-07T01:30:00Z")),
            "saturday 02:30"
        );
        assert!(
            !night.contains(&at("2026-03-05T21:30:00Z")),
            "thursday 22:30"
        );
    }

    #[test]
    fn a_paris_schedule_fires_once_a_day_at_local_time_across_both_dst_changes() {
        let paris = chrono_tz::Europe::Paris;
        // 2026: clocks go forward on Sunday 29 March, back on Sunday 25 October.
        for start in ["2026-03-25T00:00:00Z", "2026-10-21T00:00:00Z"] {
            let tracker =
                Tracker::new(vec![schedule(Some("0 20 * * *"), Some("0 8 * * *"), paris)]);
            let fired = run(&tracker, utc(start), 9);
            let mut per_day: BTreeMap<(NaiveDate, &str), Vec<String>> = BTreeMap::new();
            for (at, what) in &fired {
                let local = at.with_timezone(&paris);
                let kind = match what {
                    Fired::Sleep(_) => "sleep",
                    Fired::Wake(_) => "wake",
                };
                per_day
                    .entry((local.date_naive(), kind))
                    .or_default()
                    .push(local.format("%H:%M %:z").to_string());
            }
            // Nine days, each with one wake at 08:00 and one sleep at 20:00 local.
            assert_eq!(
                per_day.values().filter(|t| t.len() != 1).count(),
                0,
                "{per_day:?}"
            );
            let wakes: Vec<&String> = per_day
                .iter()
                .filter(|((_, kind), _)| *kind == "wake")
                .flat_map(|(_, times)| times)
                .collect();
            let sleeps: Vec<&String> = per_day
                .iter()
                .filter(|((_, kind), _)| *kind == "sleep")
                .flat_map(|(_, times)| times)
                .collect();
            assert_eq!(wakes.len(), 9, "{wakes:?}");
            assert_eq!(sleeps.len(), 9, "{sleeps:?}");
            assert!(wakes.iter().all(|t| t.starts_with("08:00 ")), "{wakes:?}");
            assert!(sleeps.iter().all(|t| t.starts_with("20:00 ")), "{sleeps:?}");
            // Both offsets were seen: the change happened inside the run.
            assert!(wakes.iter().any(|t| t.ends_with("+01:00")), "{wakes:?}");
            assert!(wakes.iter().any(|t| t.ends_with("+02:00")), "{wakes:?}");
        }
    }

    #[test]
    fn a_time_inside_the_dst_gap_or_overlap_still_fires_once_that_day() {
        let paris = chrono_tz::Europe::Paris;
        // 02:30 does not exist on 29 March and happens twice on 25 October.
        for (start, day) in [
            ("2026-03-27T00:00:00Z", "2026-03-29"),
            ("2026-10-23T00:00:00Z", "2026-10-25"),
        ] {
            let tracker = Tracker::new(vec![schedule(Some("30 2 * * *"), None, paris)]);
            let fired = run(&tracker, utc(start), 4);
            let mut per_day: BTreeMap<NaiveDate, usize> = BTreeMap::new();
            for (at, _) in &fired {
                *per_day
                    .entry(at.with_timezone(&paris).date_naive())
                    .or_default() += 1;
            }
            assert!(per_day.values().all(|n| *n == 1), "{per_day:?}");
            let change: NaiveDate = day.parse().expect("date");
            assert_eq!(per_day.get(&change), Some(&1), "{per_day:?}");
        }
    }

    #[test]
    fn the_sleep_window_runs_from_sleep_to_wake_and_is_known_at_the_first_tick() {
        let paris = chrono_tz::Europe::Paris;
        let tracker = Tracker::new(vec![schedule(
            Some("0 20 * * 1-5"),
            Some("0 8 * * 1-5"),
            paris,
        )]);
        // Tuesday 2026-06-02 23:00 Paris (21:00 UTC): inside since Tuesday 20:00.
        assert!(tracker.tick(utc("2026-06-02T21:00:00Z")).is_empty());
        let window = tracker.snapshot()[0].sleeping.expect("sleeping");
        assert_eq!(window.since, utc("2026-06-02T18:00:00Z"));
        assert_eq!(window.until, Some(utc("2026-06-03T06:00:00Z")));
        assert_eq!(
            local_text(window.until.expect("until"), paris),
            "Wed 03 Jun 08:00 (Europe/Paris)"
        );
        // The wake time ends it.
        assert_eq!(
            tracker.tick(utc("2026-06-03T06:00:00Z")),
            vec![Fired::Wake(0)]
        );
        assert!(tracker.snapshot()[0].sleeping.is_none());
        // Friday night lasts until Monday morning.
        tracker.tick(utc("2026-06-05T18:00:00Z"));
        let weekend = tracker.snapshot()[0].sleeping.expect("weekend");
        assert_eq!(weekend.until, Some(utc("2026-06-08T06:00:00Z")));
    }

    #[test]
    fn keep_awake_windows_wake_on_entry_and_end_sleep_windows() {
        let paris = chrono_tz::Europe::Paris;
        let mut entry = schedule(Some("0 20 * * *"), None, paris);
        entry.keep_awake = vec![
            Window::new("08:00", "19:00", Days::parse("mon-fri").expect("d")).expect("window"),
        ];
        let tracker = Tracker::new(vec![entry]);
        // Monday 2026-06-01 10:00 Paris: inside the window at the first tick.
        assert_eq!(
            tracker.tick(utc("2026-06-01T08:00:00Z")),
            vec![Fired::Wake(0)]
        );
        assert!(tracker.snapshot()[0].keep_awake);
        assert!(tracker.tick(utc("2026-06-01T08:01:00Z")).is_empty());
        assert!(tracker.tick(utc("2026-06-01T17:00:00Z")).is_empty());
        assert!(!tracker.snapshot()[0].keep_awake);
        assert_eq!(
            tracker.tick(utc("2026-06-01T18:00:00Z")),
            vec![Fired::Sleep(0)]
        );
        let night = tracker.snapshot()[0].sleeping.expect("night");
        assert_eq!(night.until, Some(utc("2026-06-02T06:00:00Z")));
        assert_eq!(
            tracker.tick(utc("2026-06-02T06:00:00Z")),
            vec![Fired::Wake(0)]
        );
        assert!(tracker.snapshot()[0].sleeping.is_none());
        // Saturday has no window: the night goes on until Monday.
        tracker.tick(utc("2026-06-05T18:00:00Z"));
        let weekend = tracker.snapshot()[0].sleeping.expect("weekend");
        assert_eq!(weekend.until, Some(utc("2026-06-08T06:00:00Z")));
    }
}

/// A simulated week of the whole lifecycle under its schedules, with paused time.
#[cfg(test)]
mod week {
    use super::*;
    use crate::events::{EventKind, StopCause, WakeCause};
    use crate::lifecycle::{Lifecycle, Settings};
    use crate::model::Plain;
    use crate::model::Policy;
    use crate::model::State;
    use crate::providers::fake::FakeProvider;
    use crate::providers::{AppStatus, Provider};
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    fn entry(apps: &str, sleep: &str, wake: &str, tz: Tz) -> Schedule {
        let cron = |text: &str| croner::parser::CronParser::new().parse(text).expect("cron");
        Schedule {
            apps: vec![Pattern::parse(apps, Plain::Whole).expect("glob")],
            label: apps.to_owned(),
            sleep: Some(cron(sleep)),
            wake: Some(cron(wake)),
            keep_awake: Vec::new(),
            timezone: tz,
            wake_on_request: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_week_of_schedules_in_paused_time() {
        let paris = chrono_tz::Europe::Paris;
        let mut review = entry("review-*", "0 20 * * 1-5", "0 8 * * 1-5", paris);
        review.keep_awake =
            vec![Window::new("09:00", "20:00", Days::parse("mon-fri").expect("days")).expect("w")];
        let mut demo = entry("demo", "0 22 * * *", "0 7 * * *", chrono_tz::UTC);
        demo.wake_on_request = false;
        let fake = Arc::new(FakeProvider::new(
            "fake",
            &[
                ("review-1", AppStatus::Running),
                ("review-2", AppStatus::Running),
                ("demo", AppStatus::Running),
                ("other", AppStatus::Running),
            ],
        ));
        fake.with(|s| {
            s.allow_start = true;
            s.allow_stop = true;
        });
        let provider: Arc<dyn Provider> = fake.clone();
        // Monday 1 June 2026, 00:00 UTC (02:00 in Paris).
        let monday = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let lifecycle = Lifecycle::new(
            vec![provider],
            Settings {
                defaults: Policy {
                    max_idle: Some(Duration::from_secs(30 * 60)),
                    ..Policy::default()
                },
                schedules: vec![review, demo],
                wall_start: Some(SystemTime::from(monday)),
                ..Settings::default()
            },
        );
        lifecycle.discover().await;
        let app = |name: &str| lifecycle.app("fake", name).expect("app");

        // (minute of the week, app) -> state, sampled once a minute.
        let mut states: BTreeMap<(i64, &str), State> = BTreeMap::new();
        let mut refused_at_night = None;
        let mut woken_at_night = None;
        for minute in 0..7 * 24 * 60 {
            let now = monday + ChronoDuration::minutes(minute);
            let local = now.with_timezone(&paris);
            // Tuesday 23:00 in Paris: someone opens review-1 (a schedule that lets
            // requests wake it).
            if local.weekday() == chrono::Weekday::Tue && local.hour() == 23 && local.minute() == 0
            {
                let review_1 = app("review-1");
                let _request = lifecycle.begin_request(&review_1);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                let woken = lifecycle
                    .ensure_awake(
                        &review_1,
                        || WakeCause::Request {
                            method: "GET".into(),
                            path: "/".into(),
                            user_agent: None,
                            client_ip: std::net::Ipv4Addr::LOCALHOST.into(),
                        },
                        deadline,
                    )
                    .await;
                woken_at_night = Some(woken.is_ok());
            }
            // Wednesday 23:00 UTC: demo is asleep and requests may not wake it.
            if now.weekday() == chrono::Weekday::Wed && now.hour() == 23 && now.minute() == 0 {
                refused_at_night = Some(lifecycle.wake_refused(&app("demo")));
            }
            // Thursday 12:00 Paris: review-2 is pinned until unpinned.
            if local.weekday() == chrono::Weekday::Thu && local.hour() == 12 && local.minute() == 0
            {
                lifecycle.pin(&app("review-2"), None).await;
            }
            lifecycle.apply_schedules();
            lifecycle.check_idle();
            tokio::time::sleep(Duration::from_secs(60)).await;
            for name in ["review-1", "review-2", "demo", "other"] {
                states.insert((minute, name), app(name).state());
            }
        }
        let at = |day: i64, hour: i64, minute: i64, name: &str| {
            // Paris is UTC+2 in June.
            let utc_minute = day * 1440 + (hour - 2) * 60 + minute;
            states.get(&(utc_minute, name)).copied()
        };

        for day in 0..5 {
            // Kept awake in the window although nobody uses them (max_idle is 30 min).
            for hour in [9, 12, 17, 19] {
                assert_eq!(
                    at(day, hour, 30, "review-1"),
                    Some(State::Awake),
                    "day {day} {hour}h"
                );
                assert_eq!(
                    at(day, hour, 30, "review-2"),
                    Some(State::Awake),
                    "day {day} {hour}h"
                );
            }
            // Woken at 08:00 (pre-warmed); before the window its idle timer applies (30
            // min), then the window opening wakes it again.
            assert_eq!(
                at(day, 8, 5, "review-1"),
                Some(State::Awake),
                "day {day} 08:05"
            );
            assert_eq!(
                at(day, 8, 45, "review-1"),
                Some(State::Asleep),
                "day {day} 08:45"
            );
            // The sleep time stops it at once (idle for 11 hours but kept awake until then).
            assert_eq!(
                at(day, 20, 1, "review-1"),
                Some(State::Asleep),
                "day {day} 20:01"
            );
            // Asleep at night (review-2 from Thursday on is pinned).
            if day < 3 {
                assert_eq!(
                    at(day + 1, 3, 0, "review-2"),
                    Some(State::Asleep),
                    "night {day}"
                );
            }
        }
        // The weekend: no wake time, asleep all day.
        for hour in [3, 10, 15, 21] {
            assert_eq!(
                at(5, hour, 0, "review-1"),
                Some(State::Asleep),
                "saturday {hour}h"
            );
            assert_eq!(
                at(6, hour, 0, "review-1"),
                Some(State::Asleep),
                "sunday {hour}h"
            );
        }
        // The night request woke review-1, then its idle timer put it back to sleep.
        assert_eq!(woken_at_night, Some(true));
        assert_eq!(at(1, 23, 5, "review-1"), Some(State::Awake));
        assert_eq!(at(1, 23, 45, "review-1"), Some(State::Asleep));
        // The pin outranks the sleep time.
        assert_eq!(
            at(3, 21, 0, "review-2"),
            Some(State::Awake),
            "pinned thursday night"
        );
        assert_eq!(
            at(6, 12, 0, "review-2"),
            Some(State::Awake),
            "pinned sunday"
        );
        // demo: refused at night, with the time it is back.
        let refusal = refused_at_night.flatten().expect("refused");
        assert_eq!(
            refusal.until,
            Some(
                DateTime::parse_from_rfc3339("2026-06-04T07:00:00Z")
                    .expect("t")
                    .to_utc()
            )
        );
        assert_eq!(
            at(3, 9, 5, "demo"),
            Some(State::Awake),
            "demo woken at 07:00 UTC"
        );
        // An app no schedule matches follows its idle timer only.
        assert_eq!(at(0, 3, 0, "other"), Some(State::Asleep));
        assert_eq!(at(0, 12, 0, "other"), Some(State::Asleep));

        // Each stop and wake says why.
        let events = lifecycle.events().recent();
        let scheduled_stops = events
            .iter()
            .filter(|e| {
                &*e.app.name == "review-1"
                    && matches!(
                        &e.kind,
                        EventKind::StopRequested {
                            cause: StopCause::Schedule { .. }
                        }
                    )
            })
            .count();
        let scheduled_wakes = events
            .iter()
            .filter(|e| {
                &*e.app.name == "review-1"
                    && matches!(
                        &e.kind,
                        EventKind::WakeRequested {
                            cause: WakeCause::Schedule { .. }
                        }
                    )
            })
            .count();
        assert_eq!(
            scheduled_wakes, 10,
            "08:00 pre-warm and 09:00 window, each weekday"
        );
        assert_eq!(scheduled_stops, 5, "one 20:00 sleep each weekday");
        // The pinned app was put to sleep by the schedule on Monday to Wednesday only.
        let pinned_stops = events
            .iter()
            .filter(|e| {
                &*e.app.name == "review-2"
                    && matches!(
                        &e.kind,
                        EventKind::StopRequested {
                            cause: StopCause::Schedule { .. }
                        }
                    )
            })
            .count();
        assert_eq!(pinned_stops, 3);
    }
}
