//! The subcommands of `sietch`, one file each.

mod channel;
mod client;
mod completions;
mod devnet;
mod devnet_ai;
mod devnet_hostile;
mod devnet_train;
mod escrow;
mod generate;
mod init;
mod job;
mod job_flags;
mod job_net;
mod key;
mod node;
mod offers;
mod outputs;
mod progress;
mod provider;
mod train;
mod train_local;
mod train_text;

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
    /// Create a node's data directory: keys (ed25519 identity; the EVM account's key in an
    /// encrypted keystore, new or imported) and config.
    Init(init::InitArgs),
    /// The node's EVM key: move an unencrypted one into a keystore, export it.
    Key(key::KeyArgs),
    /// Run a node.
    Node(node::NodeArgs),
    /// Jobs: run one locally in the provider's sandbox, or submit, follow and fetch them
    /// through a node.
    Job(job::JobArgs),
    /// Text from a language model (a GGUF file), bought on the market through a node, or
    /// run here with --local to see what it gives and what it would cost.
    Generate(Box<generate::GenerateArgs>),
    /// The live offers a node knows.
    Offers(offers::OffersArgs),
    /// Payment channels: list them, fund one.
    Channel(channel::ChannelArgs),
    /// Providers: stake, settled jobs, checks, slashes, reputation.
    Provider(provider::ProviderArgs),
    /// Train a model across the market's providers, round by round, every job verifiable
    /// (or here with --local).
    Train(train::TrainArgs),
    /// The escrow contract: deploy one to any EVM chain for an ERC-20.
    Escrow(escrow::EscrowArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
}

impl Cli {
    /// Runs the command; its error, which may quote a node's or a peer's answer, comes back
    /// with what to do about it (`client::with_fix`) and what a terminal would act on escaped.
    pub(crate) fn run(self) -> anyhow::Result<()> {
        self.dispatch()
            .map_err(|e| client::safe_error(&client::with_fix(e)))
    }

    fn dispatch(self) -> anyhow::Result<()> {
        match self.command {
            Command::Devnet(args) => devnet::run(args),
            Command::Init(args) => init::run(args),
            Command::Key(args) => key::run(args),
            Command::Node(args) => node::run(args),
            Command::Job(args) => job::run(args),
            Command::Generate(args) => generate::run(*args),
            Command::Offers(args) => offers::run(args),
            Command::Channel(args) => channel::run(args),
            Command::Provider(args) => provider::run(args),
            Command::Train(args) => train::run(args),
            Command::Escrow(args) => escrow::run(args),
            Command::Completions(args) => completions::run(args),
        }
    }
}

/// `$SIETCH_DATA_DIR`, else `$HOME/.sietch`, else `./.sietch`.
pub(crate) fn default_data_dir() -> std::path::PathBuf {
    std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_default()
        .join(".sietch")
}
