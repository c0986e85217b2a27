//! The watches' cache: what each (namespace, kind) list + watch knows, fed by kube-runtime's
//! watcher events (a re-list is swapped in whole when it completes; an error keeps the last
//! known state). It makes no call itself and holds no credential.

use std::collections::BTreeMap;
use std::sync::Mutex;

use kube::api::DynamicObject;
use kube::runtime::watcher;

use super::kube_error;
use super::workload::{Workload, WorkloadKind};
use crate::providers::ProviderError;

/// What one (namespace, kind) watch knows.
#[derive(Debug, Default)]
pub(super) struct Stream {
    /// Whether a first list completed.
    pub(super) synced: bool,
    /// The objects, by name.
    pub(super) objects: BTreeMap<String, Workload>,
    /// The objects of a (re-)list under way, swapped in when it completes.
    pub(super) relisting: Option<BTreeMap<String, Workload>>,
    /// The last error, while it is not recovered.
    pub(super) error: Option<ProviderError>,
}

/// Every watch's state.
#[derive(Debug, Default)]
pub(super) struct Cache {
    /// By (namespace, kind).
    pub(super) streams: BTreeMap<(String, WorkloadKind), Stream>,
}

impl Cache {
    /// Every workload known, in a stable order.
    pub(super) fn workloads(&self) -> Vec<&Workload> {
        self.streams
            .values()
            .flat_map(|stream| stream.objects.values())
            .collect()
    }
}

/// A watcher error as a provider error (`what`: the listing).
fn watch_error(error: watcher::Error, what: &str) -> ProviderError {
    match error {
        watcher::Error::InitialListFailed(error)
        | watcher::Error::WatchStartFailed(error)
        | watcher::Error::WatchFailed(error) => kube_error(error, what),
        watcher::Error::WatchError(status) if status.code == 410 => ProviderError::Failed(format!(
            "{what}: the watch expired (410 Gone), listing again"
        )),
        watcher::Error::WatchError(status) => kube_error(kube::Error::Api(status), what),
        watcher::Error::NoResourceVersion => {
            ProviderError::Failed(format!("{what}: the answer has no resourceVersion"))
        }
    }
}

/// One watcher event into the cache.
pub(super) fn apply(
    provider: &str,
    cache: &Mutex<Cache>,
    key: &(String, WorkloadKind),
    event: Result<watcher::Event<DynamicObject>, watcher::Error>,
) {
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    let stream = cache.streams.entry(key.clone()).or_default();
    let parse = |object: DynamicObject| {
        let value = serde_json::to_value(&object).ok()?;
        Workload::parse(provider, key.1, value)
    };
    match event {
        Ok(watcher::Event::Init) => stream.relisting = Some(BTreeMap::new()),
        Ok(watcher::Event::InitApply(object)) => {
            if let Some(workload) = parse(object) {
                stream
                    .relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(workload.name.clone(), workload);
            }
        }
        Ok(watcher::Event::InitDone) => {
            stream.objects = stream.relisting.take().unwrap_or_default();
            stream.synced = true;
            stream.error = None;
        }
        Ok(watcher::Event::Apply(object)) => {
            if let Some(workload) = parse(object) {
                stream.objects.insert(workload.name.clone(), workload);
            }
            stream.error = None;
        }
        Ok(watcher::Event::Delete(object)) => {
            if let Some(name) = object.metadata.name {
                stream.objects.remove(&name);
            }
        }
        Err(error) => {
            // The watcher recovers by itself (re-listing after a 410); the last state stays.
            let error = watch_error(error, &format!("listing {} in {}", key.1.plural(), key.0));
            tracing::warn!(provider, namespace = %key.0, kind = key.1.plural(), %error, "watch failed, keeping the last known state");
            stream.error = Some(error);
        }
    }
}
