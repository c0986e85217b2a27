//! What one platform's file gives the rest of the engine: its `type:` name, how its config
//! entry is read and validated, which of its keys are credentials (and which decide where
//! they are sent), the facts it states about itself ([`Facts`]) and how its client is built.
//!
//! Each platform implements [`Platform`] on its config type, in its own file; the
//! registration in [`super`] turns the implementations into the closed `ProviderConfig` and
//! the table the generic code asks ([`super::registration`]). This module names no platform, and
//! nothing here decides anything: it only describes.

use std::sync::Arc;

use super::{Provider, ProviderError};
use crate::secret::Secret;
use crate::settings::{Fields, Key, Reader};

/// One platform, as its file describes it (implemented on its config type).
pub trait Platform: Sized {
    /// Its `type:` in the config (`process`, `scalingo`).
    const KIND: &'static str;

    /// Keys of its config entries that hold credentials: sealed at rest, never shown.
    const SECRET_KEYS: &'static [&'static str];

    /// Keys of its config entries that decide where the credentials are sent: a change of
    /// one drops the stored credentials of a space changed through the API.
    const ENDPOINT_KEYS: &'static [&'static str];

    /// What the engine knows of the platform beyond its API.
    const FACTS: Facts;

    /// What an account on it is, for the configuration reference.
    const DOC: &'static str;

    /// The keys of its config entries besides `id` and `type`, as [`Platform::read`] takes
    /// them (the configuration reference, the JSON Schema and the drift test read them).
    const KEYS: &'static [Key];

    /// The variables its add-ons set in an app's containers to their connection URLs:
    /// read, after the generic `DATABASE_URL` and `REDIS_URL`, when the engine runs from
    /// the environment alone. None by default.
    const ADDON_VARIABLES: AddOnVariables = AddOnVariables::NONE;

    /// Reads and checks one `providers:` entry of this type (`path`: the entry, `kind_path`:
    /// its `type`), every error collected in `reader`; `id` and `type` are already taken,
    /// and the keys left in `fields` are reported as unknown by the caller. The config's
    /// `id` is left empty (the caller sets it).
    fn read(
        reader: &mut Reader<'_>,
        fields: &mut Fields<'_>,
        path: &str,
        kind_path: &str,
    ) -> Option<Self>;

    /// The credentials it holds.
    fn secrets(&self) -> Vec<&Secret>;

    /// Builds the provider client.
    fn build(&self) -> Result<Arc<dyn Provider>, ProviderError>;

    /// Builds the client for a reloaded configuration of the account `previous` runs (same
    /// id, changed settings), taking over what must outlive the old client (local
    /// processes). Platforms whose clients hold nothing of the kind build afresh.
    fn build_after(
        &self,
        previous: &Arc<dyn Provider>,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        let _ = previous;
        self.build()
    }
}

/// What the engine knows of a platform beyond its API, stated in the platform's file.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// The variable the platform sets, in an app's containers, to the app's name or id: when
    /// the engine itself runs there, that app is its own and is never managed.
    pub own_app_variable: Option<&'static str>,
    /// Built-in prices, where a public source is cited in docs/src/savings.md; `None`: hours
    /// only, unless `savings.prices` says.
    pub prices: Option<PriceTable>,
    /// Grid carbon intensity where it runs, gCO2e/kWh; `None`: the savings' default.
    pub grid_g_per_kwh: Option<f64>,
}

impl Facts {
    /// Nothing known.
    pub const NONE: Facts = Facts {
        own_app_variable: None,
        prices: None,
        grid_g_per_kwh: None,
    };
}

/// The variables a platform's add-ons set to their URLs, in the order they are looked at.
#[derive(Debug, Clone, Copy)]
pub struct AddOnVariables {
    /// A PostgreSQL add-on's URL: the engine's `database.url`.
    pub database: &'static [&'static str],
    /// A Redis add-on's URL: the engine's `registry` (`type: redis`).
    pub redis: &'static [&'static str],
}

impl AddOnVariables {
    /// No add-on variable of its own.
    pub const NONE: AddOnVariables = AddOnVariables {
        database: &[],
        redis: &[],
    };
}

/// A platform's published prices per container size, over a billing period.
#[derive(Debug, Clone, Copy)]
pub struct PriceTable {
    /// ISO 4217 code of the prices.
    pub currency: &'static str,
    /// Hours the period's price is spread over.
    pub period_hours: f64,
    /// Size (lowercase, as the platform names it) and its price for the period.
    pub sizes: &'static [(&'static str, f64)],
}

/// Grid carbon intensity of France (RTE, 2023), gCO2e/kWh.
pub const GRID_FRANCE_G_PER_KWH: f64 = 32.0;

/// The keys of `lists`, each once, in order of first appearance; `N` is at least their
/// total length, and the `usize` says how many of the array's slots are used.
pub(super) const fn union<const N: usize>(lists: &[&[&'static str]]) -> ([&'static str; N], usize) {
    let mut keys = [""; N];
    let mut count = 0;
    let mut list = 0;
    while list < lists.len() {
        let mut index = 0;
        while index < lists[list].len() {
            let key = lists[list][index];
            let mut seen = 0;
            while seen < count && !same(keys[seen], key) {
                seen += 1;
            }
            if seen == count {
                keys[count] = key;
                count += 1;
            }
            index += 1;
        }
        list += 1;
    }
    (keys, count)
}

/// The total length of `lists`.
pub(super) const fn total(lists: &[&[&'static str]]) -> usize {
    let mut total = 0;
    let mut list = 0;
    while list < lists.len() {
        total += lists[list].len();
        list += 1;
    }
    total
}

/// `a == b`, at compile time.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut index = 0;
    while index < a.len() {
        if a[index] != b[index] {
            return false;
        }
        index += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_union_keeps_the_first_of_each_key_in_order() {
        const LISTS: &[&[&str]] = &[&[], &["a", "b"], &["b"], &["c", "a", "d"]];
        const UNION: ([&str; total(LISTS)], usize) = union(LISTS);
        assert_eq!(&UNION.0[..UNION.1], ["a", "b", "c", "d"]);
    }
}
