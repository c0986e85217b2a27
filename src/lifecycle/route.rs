//! The route table: route key -> app, rebuilt by discovery whenever the set of apps changes
//! and read by every request. Keys: each app's name and aliases, lowercased, and always
//! `<app>--<provider>` (which always wins); a plain name several providers share leads to
//! their qualified keys. Turning a request's host into a route key is the proxy's job
//! (`crate::proxy::route`); this file never sees a request and never calls a provider.

use std::collections::HashMap;
use std::sync::Arc;

use super::App;

/// What a route key leads to.
#[derive(Debug, Clone)]
pub enum Route {
    /// One app.
    App(Arc<App>),
    /// A plain name that exists in several providers: the qualified keys that do resolve.
    Ambiguous(Vec<String>),
}

/// Route key -> app, rebuilt whenever the set of apps changes.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Every key, lowercased. foldhash: fast on short keys, randomly seeded per process.
    routes: HashMap<Box<str>, Route, foldhash::fast::RandomState>,
}

impl RouteTable {
    /// The table for these apps: their names and aliases, then their qualified keys (which
    /// always win).
    pub fn build(apps: &[Arc<App>]) -> RouteTable {
        let mut routes: HashMap<Box<str>, Route, _> = HashMap::default();
        let keys = apps.iter().flat_map(|app| {
            let aliases: Vec<String> = app
                .conf()
                .aliases
                .iter()
                .map(|alias| alias.to_ascii_lowercase())
                .collect();
            std::iter::once(app.key.name.to_ascii_lowercase())
                .chain(aliases)
                .map(move |key| (key, app))
        });
        for (key, app) in keys {
            let key: Box<str> = key.into();
            match routes.get_mut(&key) {
                Some(Route::App(other)) if Arc::ptr_eq(other, app) => {}
                None => {
                    routes.insert(key, Route::App(Arc::clone(app)));
                }
                Some(Route::App(other)) => {
                    let both = vec![qualified(other), qualified(app)];
                    routes.insert(key, Route::Ambiguous(both));
                }
                Some(Route::Ambiguous(keys)) => {
                    let key = qualified(app);
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
            }
        }
        for app in apps {
            routes.insert(qualified(app).into(), Route::App(Arc::clone(app)));
        }
        RouteTable { routes }
    }

    /// What `key` leads to.
    pub fn get(&self, key: &str) -> Option<&Route> {
        self.routes.get(key)
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table holds no key.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// `<app>--<provider>`: the route key that always leads to exactly one app.
pub fn qualified(app: &App) -> String {
    format!("{}--{}", app.key.name, app.key.provider).to_ascii_lowercase()
}
