//! Starting an app on a platform with process types (Scalingo's containers, Heroku's dynos),
//! where what the engine remembers is a memory and the platform is the truth.
//!
//! The formation asked for (remembered at the last stop, or a rule's) is set against the
//! process types the app has on the platform now, read just before the scale: a type that is
//! gone (removed by a deployment while the app slept) is dropped; a type the platform has and
//! the formation does not name is left as the platform has it (amounts are never invented).
//! A scale refused anyway (a deployment landed between the read and the scale) is read again
//! and, when a type it named is gone by then, retried once without it.

use async_trait::async_trait;

use super::ProviderError;
use crate::model::{Formation, Reconciled, Upstream};

/// What a start learned from the platform, besides starting the app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Started {
    /// How the formation asked for was set against the platform's process types, when a type
    /// it names is gone; `None`: started as asked.
    pub reconciled: Option<Reconciled>,
    /// Where the platform says the app answers now, when the start read it (`None`: not
    /// read; the last listing's address stands).
    pub upstream: Option<Upstream>,
}

/// A platform whose apps run process types at amounts.
#[async_trait]
pub(crate) trait ProcessTypes: Send + Sync {
    /// Every process type `app` has now, with its amount (0 included).
    async fn read_formation(&self, app: &str) -> Result<Formation, ProviderError>;

    /// Sets these amounts (the types not named are left as they are); returns once the
    /// platform accepted it.
    async fn set_amounts(&self, app: &str, amounts: &[(String, u32)]) -> Result<(), ProviderError>;
}

/// Starts `app` with `wanted` reduced to the process types the platform has (see the module
/// doc); with nothing to restore, one web process unless web already runs.
pub(crate) async fn start<P: ProcessTypes + ?Sized>(
    platform: &P,
    app: &str,
    wanted: Option<&Formation>,
) -> Result<Started, ProviderError> {
    let types = platform.read_formation(app).await?;
    let first = plan(app, wanted, &types)?;
    let refused = match scale(platform, app, &first.amounts).await {
        Ok(()) => {
            return Ok(Started {
                reconciled: first.reconciled,
                upstream: None,
            });
        }
        Err(refused @ (ProviderError::Rejected(_) | ProviderError::NotFound(_))) => refused,
        Err(error) => return Err(error),
    };
    // Refused: retried only when the platform's process types changed since the read.
    let types = platform.read_formation(app).await?;
    if first
        .amounts
        .iter()
        .all(|(kind, _)| types.contains_key(kind))
    {
        return Err(refused);
    }
    tracing::debug!(app, %refused, "process types changed during the start, retrying");
    let second = plan(app, wanted, &types)?;
    scale(platform, app, &second.amounts).await?;
    Ok(Started {
        reconciled: second.reconciled,
        upstream: None,
    })
}

/// Sets `amounts`, when there are any.
async fn scale<P: ProcessTypes + ?Sized>(
    platform: &P,
    app: &str,
    amounts: &[(String, u32)],
) -> Result<(), ProviderError> {
    if amounts.is_empty() {
        return Ok(());
    }
    platform.set_amounts(app, amounts).await
}

/// What a start sets on the platform.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    /// The amounts to set (empty: nothing to do).
    amounts: Vec<(String, u32)>,
    /// What differs from the formation asked for, when a type it names is gone.
    reconciled: Option<Reconciled>,
}

/// The plan for `wanted` on an app whose process types are `types`.
fn plan(app: &str, wanted: Option<&Formation>, types: &Formation) -> Result<Plan, ProviderError> {
    let wanted: Vec<(&String, u32)> = wanted
        .into_iter()
        .flatten()
        .filter(|(_, amount)| **amount > 0)
        .map(|(kind, amount)| (kind, *amount))
        .collect();
    let (kept, gone): (Vec<_>, Vec<_>) = wanted
        .into_iter()
        .partition(|(kind, _)| types.contains_key(*kind));
    let dropped: Vec<String> = gone.into_iter().map(|(kind, _)| kind.clone()).collect();
    let mut amounts: Vec<(String, u32)> = kept
        .into_iter()
        .map(|(kind, amount)| (kind.clone(), amount))
        .collect();
    if amounts.is_empty() {
        // Nothing (left) to restore: an app that runs web keeps what it runs, else one web.
        match types.get("web") {
            Some(running) if *running > 0 => {}
            Some(_) => amounts.push(("web".to_owned(), 1)),
            None if dropped.is_empty() => {
                return Err(ProviderError::Rejected(format!(
                    "nothing to start: `{app}` has no `web` process type, and no formation \
                     is remembered or configured for it"
                )));
            }
            None => {
                return Err(ProviderError::Rejected(format!(
                    "nothing to start: `{app}` no longer has the process types it ran ({}) \
                     and has no `web` process type",
                    dropped.join(", ")
                )));
            }
        }
    }
    let reconciled = (!dropped.is_empty()).then(|| Reconciled {
        formation: amounts.iter().cloned().collect(),
        left: types
            .iter()
            .filter(|(kind, _)| !amounts.iter().any(|(started, _)| started == *kind))
            .map(|(kind, amount)| (kind.clone(), *amount))
            .collect(),
        dropped,
        upstream: None,
    });
    Ok(Plan {
        amounts,
        reconciled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formation(pairs: &[(&str, u32)]) -> Formation {
        pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    }

    fn amounts(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
        pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    }

    #[test]
    fn a_formation_the_platform_still_has_is_started_as_remembered() {
        let wanted = formation(&[("web", 2), ("worker", 1)]);
        let types = formation(&[("web", 0), ("worker", 0), ("release", 0)]);
        let plan = plan("shop", Some(&wanted), &types).expect("plan");
        assert_eq!(plan.amounts, amounts(&[("web", 2), ("worker", 1)]));
        assert_eq!(plan.reconciled, None);
    }

    #[test]
    fn gone_types_are_dropped_and_new_ones_left_as_they_are() {
        let wanted = formation(&[("web", 2), ("worker", 1)]);
        let types = formation(&[("web", 0), ("clock", 0)]);
        let plan = plan("shop", Some(&wanted), &types).expect("plan");
        assert_eq!(plan.amounts, amounts(&[("web", 2)]));
        assert_eq!(
            plan.reconciled,
            Some(Reconciled {
                dropped: vec!["worker".to_owned()],
                formation: formation(&[("web", 2)]),
                left: formation(&[("clock", 0)]),
                upstream: None,
            })
        );
    }

    #[test]
    fn with_nothing_left_to_restore_one_web_process_starts() {
        let wanted = formation(&[("worker", 1)]);
        let fallback = plan("shop", Some(&wanted), &formation(&[("web", 0)])).expect("plan");
        assert_eq!(fallback.amounts, amounts(&[("web", 1)]));
        assert_eq!(
            fallback.reconciled.map(|r| (r.dropped, r.formation)),
            Some((vec!["worker".to_owned()], formation(&[("web", 1)])))
        );
        // Nothing remembered, web already running: nothing to set.
        let running = plan("shop", None, &formation(&[("web", 3)])).expect("plan");
        assert_eq!(
            running,
            Plan {
                amounts: Vec::new(),
                reconciled: None
            }
        );
    }

    #[test]
    fn an_app_without_web_and_without_its_types_is_refused_clearly() {
        let wanted = formation(&[("worker", 1)]);
        let error = plan("shop", Some(&wanted), &formation(&[("clock", 0)])).expect_err("refused");
        assert!(error.to_string().contains("(worker)"), "{error}");
        let error = plan("shop", None, &Formation::new()).expect_err("refused");
        assert!(
            error.to_string().contains("no `web` process type"),
            "{error}"
        );
    }

    #[test]
    fn the_details_name_only_what_changed() {
        let reconciled = Reconciled {
            dropped: vec!["worker".to_owned()],
            formation: formation(&[("web", 2)]),
            left: formation(&[("clock", 0)]),
            upstream: None,
        };
        let json = serde_json::to_value(&reconciled).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"dropped": ["worker"], "formation": {"web": 2}, "left": {"clock": 0}})
        );
        let moved = Reconciled {
            upstream: Some("https://app.example.com".to_owned()),
            ..Reconciled::default()
        };
        assert_eq!(
            serde_json::to_value(&moved).expect("json"),
            serde_json::json!({"upstream": "https://app.example.com"})
        );
    }
}
