//! The command line of the `paastis` binary, as clap parses it: the engine's own commands
//! (`serve`, `check`, `rekey`, `config schema`) and the admin API's clients. Declared here,
//! in the library, so the CLI reference page is generated from it; what each command does
//! is decided by the binary (the engine's) and by [`super::run`] (the clients').

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::{ClientCommand, EXIT_CODES};

/// Puts idle PaaS apps to sleep and wakes them on the first request.
#[derive(Debug, Parser)]
#[command(name = "paastis", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file [default: paastis.yml].
    #[arg(short, long, env = "PAASTIS_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Address of the proxy listener (overrides `listen` and PAASTIS_LISTEN).
    #[arg(long, global = true)]
    pub listen: Option<String>,

    /// What to do; `serve` when none is given.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy and the scheduler (what `paastis` alone does).
    Serve,
    /// Validate the configuration and print the managed apps; with --diff, say instead what
    /// a reload of the file would change on the running engine (its admin API, nothing
    /// applied).
    Check(CheckArgs),
    /// Hosted mode: seal every stored space's credentials under a new master key, given in
    /// PAASTIS_NEW_MASTER_KEY (the current one in PAASTIS_MASTER_KEY), all or nothing. Then
    /// restart every instance with the new key.
    Rekey,
    /// About the configuration file itself (no configuration needed).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The clients of a running engine's admin API (no configuration file needed).
    #[command(flatten)]
    Client(ClientCommand),
}

/// `paastis check ...`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Ask the running engine (--api-url) what a reload of this file would change.
    #[arg(long)]
    pub diff: bool,

    /// Where the running engine's admin API is (with --diff).
    #[command(flatten)]
    pub api: super::ApiArgs,
}

/// `paastis config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the JSON Schema (draft 2020-12) of paastis.yml, for editors:
    /// `paastis config schema > paastis.schema.json`.
    Schema,
}
