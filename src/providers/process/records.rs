//! Records of the `process` apps' running process groups, one small file each, so that an
//! engine that ended without stopping its apps (SIGKILL, a crash) has them stopped by the
//! next engine that runs the same app, instead of leaving them running and their ports
//! taken.
//!
//! A record names the engine that started the process and the process group's leader, each
//! by pid and start time (so a pid the system gave to another process since is never taken
//! for them), and the boot they ran in. A process group is an orphan only when its engine
//! no longer runs and its leader still does. Records live in a directory of this user's
//! alone (`$XDG_RUNTIME_DIR/paastis`, else `paastis-<uid>` in the temporary directory):
//! one that is not private is not used. They need `/proc` (Linux); elsewhere nothing is
//! recorded. This module must not start or signal processes: it says which ones are left.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A process as the system knows it during one boot: a pid alone may be given again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Identity {
    /// Its process id.
    pub pid: i32,
    /// When it started, in clock ticks since boot (`/proc/<pid>/stat`, field 22).
    pub start: u64,
}

impl Identity {
    /// The process with this pid now, when it runs.
    fn of(pid: i32) -> Option<Identity> {
        let stat = Stat::read(pid)?;
        Some(Identity {
            pid,
            start: stat.start,
        })
    }

    /// True while this very process runs (its pid was not given to another since, and it
    /// is not a zombie: an exited process its parent has not reaped yet).
    fn runs(&self) -> bool {
        Stat::read(self.pid).is_some_and(|stat| stat.is(self))
    }
}

/// What is read of `/proc/<pid>/stat`.
struct Stat {
    /// Field 3 is not `Z` (zombie) or `X` (dead): it has not exited.
    alive: bool,
    /// Field 5: its process group.
    pgid: i32,
    /// Field 22: its start time, in clock ticks since boot.
    start: u64,
}

impl Stat {
    /// True when this is `process`, running: the same start time, not a zombie.
    fn is(&self, process: &Identity) -> bool {
        self.start == process.start && self.alive
    }

    fn read(pid: i32) -> Option<Stat> {
        let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Stat::parse(&text)
    }

    /// The command name (field 2) is in parentheses and may hold spaces or parentheses
    /// itself: the fields are counted from the last `)`.
    fn parse(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        // Fields 3 onwards: state, ppid, pgrp, ... starttime is field 22.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(Stat {
            alive: !matches!(*fields.first()?, "Z" | "X" | "x"),
            pgid: fields.get(2)?.parse().ok()?,
            start: fields.get(19)?.parse().ok()?,
        })
    }
}

/// One running process group of an app, as written in its file.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The boot it ran in (`/proc/sys/kernel/random/boot_id`): after a reboot no record
    /// stands for anything.
    boot: String,
    /// The engine that started it.
    engine: Identity,
    /// The group's leader (the `sh -c` of the app's command): its pid is the group's id.
    leader: Identity,
    /// The provider (its id) and the app, which say which engine's configuration the
    /// process belongs to.
    provider: String,
    app: String,
}

/// A process group whose engine is gone, to be stopped by whoever runs its app now.
#[derive(Debug)]
pub(super) struct Orphan {
    /// The group's leader; its pid is the group's id.
    pub leader: Identity,
    /// Its record, removed once the group is stopped.
    record: PathBuf,
}

impl Orphan {
    /// True while its leader runs and still leads its group.
    pub fn runs(&self) -> bool {
        Stat::read(self.leader.pid)
            .is_some_and(|stat| stat.is(&self.leader) && stat.pgid == self.leader.pid)
    }

    /// Forgets it (its group is stopped).
    pub fn forget(&self) {
        remove(&self.record);
    }
}

/// The records directory of this engine.
#[derive(Debug)]
pub(super) struct Records {
    /// Where the records are: a directory of this user's alone.
    dir: PathBuf,
    /// This engine, named in the records it writes.
    engine: Identity,
    /// This boot.
    boot: String,
}

/// Why the records cannot be kept (said once, in a warning; the apps run all the same).
#[derive(Debug, thiserror::Error)]
pub(super) enum RecordsError {
    #[error("{0} cannot be read here (no /proc)")]
    NoProc(&'static str),
    #[error("cannot make {path}: {error}", path = .0.display(), error = .1)]
    Create(PathBuf, std::io::Error),
    #[error("{} belongs to another user or can be read by others", .0.display())]
    NotPrivate(PathBuf),
}

impl Records {
    /// This user's records directory, made if it is missing.
    pub fn open_default() -> Result<Records, RecordsError> {
        Records::open(&default_dir())
    }

    /// The records in `dir`, made (private) if it is missing; refused when it is not this
    /// user's alone, as a record there says which processes to stop.
    pub fn open(dir: &Path) -> Result<Records, RecordsError> {
        let engine = Identity::of(i32::try_from(std::process::id()).unwrap_or(i32::MAX))
            .ok_or(RecordsError::NoProc("/proc/self/stat"))?;
        let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map_err(|_| RecordsError::NoProc("/proc/sys/kernel/random/boot_id"))?
            .trim()
            .to_owned();
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(RecordsError::Create(dir.to_owned(), error)),
        }
        // Not followed if it is a link: a link is refused, as anyone's directory would be.
        let meta = fs::symlink_metadata(dir)
            .map_err(|error| RecordsError::Create(dir.to_owned(), error))?;
        if !meta.is_dir() || meta.uid() != current_uid() || meta.permissions().mode() & 0o077 != 0 {
            return Err(RecordsError::NotPrivate(dir.to_owned()));
        }
        Ok(Records {
            dir: dir.to_owned(),
            engine,
            boot,
        })
    }

    /// Records that this engine started `app` of `provider` as the group led by `leader`;
    /// returns the record's path, to remove when the group ends. `None` (with a warning)
    /// when it cannot be written: the app runs all the same.
    pub fn write(&self, provider: &str, app: &str, leader: i32) -> Option<PathBuf> {
        let leader = Identity::of(leader)?;
        let record = Record {
            boot: self.boot.clone(),
            engine: self.engine,
            leader,
            provider: provider.to_owned(),
            app: app.to_owned(),
        };
        let path = self.dir.join(format!(
            "{}.{}.{}.json",
            file_part(provider),
            file_part(app),
            leader.pid
        ));
        let partial = path.with_extension("partial");
        let written = serde_json::to_vec(&record)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&partial)?;
                file.write_all(&bytes)?;
                fs::rename(&partial, &path)
            });
        match written {
            Ok(()) => Some(path),
            Err(error) => {
                tracing::warn!(app, path = %path.display(), %error, "cannot record the app's process: it will not be stopped if the engine is killed");
                let _ = fs::remove_file(&partial);
                None
            }
        }
    }

    /// The process groups of `app` of `provider` whose engine is gone and whose leader still
    /// runs. Records of groups that ended, or of another boot, are removed on the way.
    pub fn orphans(&self, provider: &str, app: &str) -> Vec<Orphan> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut orphans = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let Some(record) = fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok())
            else {
                continue;
            };
            if record.boot != self.boot {
                remove(&path);
                continue;
            }
            if record.provider != provider || record.app != app {
                continue;
            }
            if record.engine == self.engine || record.engine.runs() {
                // This engine's, or a running engine's: not left behind.
                continue;
            }
            let orphan = Orphan {
                leader: record.leader,
                record: path,
            };
            if orphan.runs() {
                orphans.push(orphan);
            } else {
                orphan.forget();
            }
        }
        orphans
    }
}

/// Removes a record; one already gone is no matter.
pub(super) fn remove(path: &Path) {
    let _ = fs::remove_file(path);
}

/// `$XDG_RUNTIME_DIR/paastis` when that is set (to an absolute path), else
/// `paastis-<uid>` in the temporary directory.
fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(runtime) if runtime.is_absolute() => runtime.join("paastis"),
        _ => std::env::temp_dir().join(format!("paastis-{}", current_uid())),
    }
}

fn current_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// A provider id or app name as part of a file name (both are labels; anything else is
/// replaced).
fn file_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    /// A `sleep` leading its own process group, killed on drop.
    struct Sleeper(Child);

    impl Sleeper {
        fn start() -> Sleeper {
            use std::os::unix::process::CommandExt;
            Sleeper(
                Command::new("sleep")
                    .arg("30")
                    .process_group(0)
                    .spawn()
                    .expect("spawn sleep"),
            )
        }

        fn pid(&self) -> i32 {
            i32::try_from(self.0.id()).expect("pid")
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("paastis-records-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// Changes the record at `path`.
    fn edit(path: &Path, change: impl FnOnce(&mut Record)) {
        let mut record: Record =
            serde_json::from_slice(&fs::read(path).expect("read")).expect("record");
        change(&mut record);
        fs::write(path, serde_json::to_vec(&record).expect("json")).expect("rewrite");
    }

    /// A record as another engine, now gone, would have written it.
    fn left_by_a_gone_engine(records: &Records, provider: &str, app: &str, leader: i32) -> PathBuf {
        let path = records.write(provider, app, leader).expect("written");
        // A start time no process with this pid has: the engine that wrote it is gone.
        edit(&path, |record| record.engine.start += 1);
        path
    }

    #[test]
    fn the_command_name_may_hold_spaces_and_parentheses() {
        let stat = Stat::parse(
            "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10",
        )
        .expect("parsed");
        assert_eq!(stat.pgid, 4242);
        assert_eq!(stat.start, 987654);
        assert!(stat.alive);
        let zombie =
            Stat::parse("7 (z) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0").expect("parsed");
        assert!(!zombie.alive);
        assert!(Stat::parse("4242 (cut").is_none());
        assert!(Stat::parse("4242 (x) S 1 2").is_none());
    }

    #[test]
    fn a_group_whose_engine_is_gone_is_an_orphan_and_others_are_not() {
        let dir = temp_dir("orphans");
        let records = Records::open(&dir).expect("open");
        let left = Sleeper::start();
        let ours = Sleeper::start();
        let ended = Sleeper::start();
        let other_app = Sleeper::start();
        let path = left_by_a_gone_engine(&records, "local", "hello", left.pid());
        // This engine's own record is never an orphan.
        records
            .write("local", "hello", ours.pid())
            .expect("written");
        // A record whose group ended is removed.
        let ended_path = left_by_a_gone_engine(&records, "local", "hello", ended.pid());
        drop(ended);
        // Another app's, or another provider's, is left to whoever runs it.
        let other_path = left_by_a_gone_engine(&records, "local", "other", other_app.pid());

        let orphans = records.orphans("local", "hello");
        assert_eq!(orphans.len(), 1, "{orphans:?}");
        assert_eq!(orphans[0].leader.pid, left.pid());
        assert!(orphans[0].runs());
        assert!(!ended_path.exists(), "the ended group's record is removed");
        assert!(other_path.exists());
        assert!(records.orphans("elsewhere", "hello").is_empty());

        orphans[0].forget();
        assert!(!path.exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pid_given_to_another_process_is_not_taken_for_the_leader() {
        let dir = temp_dir("reused");
        let records = Records::open(&dir).expect("open");
        let leader = Sleeper::start();
        let path = left_by_a_gone_engine(&records, "local", "hello", leader.pid());
        edit(&path, |record| record.leader.start += 1);
        assert!(records.orphans("local", "hello").is_empty());
        assert!(
            !path.exists(),
            "a record of a process that is gone is removed"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_of_another_boot_are_removed_unread() {
        let dir = temp_dir("boot");
        let records = Records::open(&dir).expect("open");
        let leader = Sleeper::start();
        let path = left_by_a_gone_engine(&records, "local", "hello", leader.pid());
        edit(&path, |record| record.boot = "another-boot".to_owned());
        assert!(records.orphans("local", "hello").is_empty());
        assert!(!path.exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_directory_others_can_read_or_a_link_is_refused() {
        let dir = temp_dir("open");
        fs::create_dir(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(matches!(
            Records::open(&dir),
            Err(RecordsError::NotPrivate(_))
        ));
        let link = temp_dir("link");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        assert!(matches!(
            Records::open(&link),
            Err(RecordsError::NotPrivate(_))
        ));
        assert!(Records::open(&dir).is_ok());
        let _ = fs::remove_file(&link);
        let _ = fs::remove_dir_all(&dir);
    }
}
