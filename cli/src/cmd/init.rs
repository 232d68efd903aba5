//! `sietch init`: creates a node's data directory with its keys and a commented config.

use std::path::PathBuf;

use clap::Args;
use sietch_node::config::CONFIG_FILE;

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The node's data directory (keys, state, blobs, config.toml).
    #[arg(long, env = "SIETCH_DATA_DIR", default_value_os_t = super::default_data_dir())]
    data_dir: PathBuf,
    /// Replace existing keys with new ones (the old identity and EVM account are lost).
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: InitArgs) -> anyhow::Result<()> {
    let id = sietch_node::service::init(&args.data_dir, args.force)?;
    if !id.created {
        println!("keys already exist (use --force to replace them)");
    }
    println!("data directory {}", args.data_dir.display());
    println!("peer {}", id.peer);
    println!("evm address {}", id.evm_address);
    println!("config {}", args.data_dir.join(CONFIG_FILE).display());
    Ok(())
}
