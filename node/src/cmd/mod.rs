//! The subcommands of `sietch`, one file each.

mod devnet;
mod job;

use clap::{Parser, Subcommand};

/// Sietch: a peer-to-peer market for GPU compute.
#[derive(Debug, Parser)]
#[command(name = "sietch", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local devnet: a chain, the contracts, several providers and the explorer.
    Devnet(devnet::DevnetArgs),
    /// Jobs: run a WebAssembly job locally in the provider's sandbox.
    Job(job::JobArgs),
}

impl Cli {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Devnet(args) => devnet::run(args),
            Command::Job(args) => job::run(args),
        }
    }
}
