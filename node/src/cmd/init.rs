//! `sietch init`: creates a node's data directory with its keys and a commented config.

use std::path::PathBuf;

use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use clap::Args;
use sietch_market::B256;
use sietch_node::config::{CONFIG_FILE, NodeConfig};
use sietch_node::net;
use sietch_node::store::{NodeKeys, Store};

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
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let store = Store::open(&args.data_dir)?;
    let fresh = NodeKeys {
        ed25519: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        evm: Some(B256::from(PrivateKeySigner::random().to_bytes())),
    };
    let keys = if args.force {
        store.replace_node_keys(&fresh)?;
        fresh
    } else {
        let kept = store.init_node_keys(&fresh)?;
        if kept.ed25519.to_bytes() != fresh.ed25519.to_bytes() {
            println!("keys already exist (use --force to replace them)");
        }
        kept
    };
    let config = args.data_dir.join(CONFIG_FILE);
    if !config.exists() {
        std::fs::write(&config, NodeConfig::template())
            .with_context(|| format!("cannot write {}", config.display()))?;
    }
    let peer = net::keypair(&keys.ed25519).public().to_peer_id();
    println!("data directory {}", args.data_dir.display());
    println!("peer {peer}");
    if let Some(evm) = keys.evm {
        println!(
            "evm address {}",
            PrivateKeySigner::from_bytes(&evm)?.address()
        );
    }
    println!("config {}", config.display());
    Ok(())
}
