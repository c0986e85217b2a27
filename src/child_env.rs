//! The environment of the commands the engine runs (`process` apps and hooks).
//!
//! A command starts from an empty environment and inherits, from the engine's, only the
//! ordinary variables of [`INHERITED`] and `LC_*`, and of those only the ones whose value is
//! not a secret: not a secret of a configuration the engine runs (registered with
//! [`withhold`]), and not the value of a `PAASTIS_*` variable or of one of the original
//! engine's credential variables (registered with [`withhold_variables`] when the engine
//! starts: the configuration's compatibility mapping knows them). Everything else the
//! engine was started with (its tokens, keys, database and Redis URLs, and whatever it does
//! not know) stays with the engine. The caller then adds what the config and the engine set
//! for the command.
//!
//! This module knows no platform and no configuration: what it withholds is handed to it.

use std::ffi::{OsStr, OsString};
use std::sync::{PoisonError, RwLock};

use tokio::process::Command;

use crate::secret::Secret;

/// The variables a command inherits from the engine, when set (and not a secret).
pub const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TERM",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// More inherited variables, by prefix: the locale's categories (`LC_ALL`, `LC_CTYPE`, ...).
pub const INHERITED_PREFIX: &str = "LC_";

/// Secrets of the configurations the engine runs: no command inherits a variable holding
/// one of them, whatever its name.
static WITHHELD: RwLock<Vec<Secret>> = RwLock::new(Vec::new());

/// Names of variables, besides `PAASTIS_*`, whose values are secrets: no command inherits
/// a variable holding one of their values, whatever its name.
static SECRET_VARIABLES: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());

/// Registers secrets no command may inherit (the engine does it for its configuration when
/// it starts). Registered secrets stay for the life of the process.
pub fn withhold(secrets: impl IntoIterator<Item = Secret>) {
    let mut withheld = WITHHELD.write().unwrap_or_else(PoisonError::into_inner);
    for secret in secrets {
        if !secret.expose().trim().is_empty() && !withheld.contains(&secret) {
            withheld.push(secret);
        }
    }
}

/// Registers names of variables whose values are secrets (the engine does it for the
/// original engine's credential variables when it starts). Registered names stay for the
/// life of the process.
pub fn withhold_variables(names: &[&'static str]) {
    let mut registered = SECRET_VARIABLES
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    for name in names {
        if !registered.contains(name) {
            registered.push(name);
        }
    }
}

/// What a command inherits from the engine's environment, as it is now.
pub fn inherited() -> Vec<(OsString, OsString)> {
    let withheld = WITHHELD.read().unwrap_or_else(PoisonError::into_inner);
    select(std::env::vars_os(), &withheld)
}

/// `sh -c <command>`, with only what [`inherited`] gives of the engine's environment; the
/// caller adds the command's own variables.
pub fn shell(command: &str) -> Command {
    let mut shell = Command::new("sh");
    shell.arg("-c").arg(command).env_clear().envs(inherited());
    shell
}

/// The variables of `vars` a command inherits, none of whose values is in `withheld` or is
/// the value of one of `vars`' own secret variables.
fn select(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    withheld: &[Secret],
) -> Vec<(OsString, OsString)> {
    let vars: Vec<(OsString, OsString)> = vars.into_iter().collect();
    let engine_secrets: Vec<&[u8]> = vars
        .iter()
        .filter(|(name, _)| holds_secret(name))
        .map(|(_, value)| value.as_encoded_bytes().trim_ascii())
        .filter(|value| !value.is_empty())
        .collect();
    let is_secret = |value: &OsStr| {
        let value = value.as_encoded_bytes().trim_ascii();
        !value.is_empty()
            && (engine_secrets.contains(&value)
                || withheld
                    .iter()
                    .any(|secret| secret.expose().trim().as_bytes() == value))
    };
    vars.iter()
        .filter(|(name, value)| inherits(name) && !is_secret(value))
        .cloned()
        .collect()
}

/// Whether a variable of this name is passed on (when its value is not a secret).
fn inherits(name: &OsStr) -> bool {
    name.to_str()
        .is_some_and(|name| INHERITED.contains(&name) || name.starts_with(INHERITED_PREFIX))
}

/// Whether the engine reads a secret from a variable of this name: any `PAASTIS_*`, and the
/// original engine's credentials and connection strings ([`withhold_variables`]).
fn holds_secret(name: &OsStr) -> bool {
    let registered = SECRET_VARIABLES
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    name.to_str()
        .is_some_and(|name| name.starts_with("PAASTIS_") || registered.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(name, value)| (OsString::from(name), OsString::from(value)))
            .collect()
    }

    fn names(selected: &[(OsString, OsString)]) -> Vec<&str> {
        selected
            .iter()
            .filter_map(|(name, _)| name.to_str())
            .collect()
    }

    #[test]
    fn only_ordinary_variables_are_inherited() {
        let selected = select(
            vars(&[
                ("PATH", "/usr/bin:/bin"),
                ("HOME", "/home/app"),
                ("LANG", "C.UTF-8"),
                ("LC_TIME", "fr_FR.UTF-8"),
                ("TZ", "Europe/Paris"),
                ("PAASTIS_ADMIN_TOKEN", "admin-token-0123456789"),
                (
                    "PAASTIS_MASTER_KEY",
                    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                ),
                ("PROVIDER_SCALINGO_API_TOKEN", "tk-us-0123"),
                ("DATABASE_URL", "postgres://u:pw@db/paastis"),
                ("REDIS_URL", "redis://:pw@redis:6379"),
                ("AWS_SECRET_ACCESS_KEY", "whatever"),
                ("LD_PRELOAD", "/tmp/evil.so"),
            ]),
            &[],
        );
        assert_eq!(names(&selected), ["PATH", "HOME", "LANG", "LC_TIME", "TZ"]);
    }

    #[test]
    fn an_inherited_name_holding_a_secret_value_is_withheld() {
        let selected = select(
            vars(&[
                ("PATH", "/usr/bin"),
                // The value of one of the engine's secret variables, under another name.
                ("LC_PAPER", "admin-token-0123456789"),
                ("PAASTIS_ADMIN_TOKEN", "admin-token-0123456789"),
                // A secret of the configuration (surrounding blanks do not hide it).
                ("TERM", "from-the-config-0042\n"),
                ("LC_NAME", "plain"),
                ("LANG", ""),
            ]),
            &[Secret::new("from-the-config-0042")],
        );
        assert_eq!(names(&selected), ["PATH", "LC_NAME", "LANG"]);
    }

    #[test]
    fn withheld_secrets_are_kept_once_and_never_empty() {
        withhold([
            Secret::new("child-env-test-secret"),
            Secret::new("child-env-test-secret"),
            Secret::new("  "),
        ]);
        let withheld = WITHHELD.read().unwrap_or_else(PoisonError::into_inner);
        let mine: Vec<&Secret> = withheld
            .iter()
            .filter(|s| s.expose().starts_with("child-env-test") || s.expose().trim().is_empty())
            .collect();
        assert_eq!(mine.len(), 1);
    }
}
