//! `sietch init`: creates a node's data directory with its keys (the EVM key in an
//! encrypted keystore) and a commented config.

use std::path::PathBuf;

use clap::Args;
use sietch_node::config::CONFIG_FILE;
use sietch_node::keys::KeyOrigin;
use sietch_node::service::{EvmKeySetup, InitOptions};

use super::key::KeyFlags;

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The node's data directory (keys, state, blobs, config.toml).
    #[arg(long, env = "SIETCH_DATA_DIR", default_value_os_t = super::default_data_dir())]
    data_dir: PathBuf,
    /// Replace existing keys with new ones (the old identity is lost; an old keystore is
    /// moved aside to `<name>.replaced-<time>`, never deleted).
    #[arg(long)]
    force: bool,
    /// Bring the EVM key from this keystore (geth, `cast wallet`, a wallet: Web3 Secret
    /// Storage v3). It is copied as it is and keeps its password (given like the node's:
    /// --password-file, $SIETCH_KEYSTORE_PASSWORD or the terminal).
    #[arg(long, value_name = "FILE", group = "evm")]
    import_keystore: Option<PathBuf>,
    /// Bring the EVM key from a file holding it as 64 hex digits (never from the command
    /// line, where the shell's history and other users would see it); it is encrypted into
    /// a new keystore.
    #[arg(long, value_name = "FILE", group = "evm")]
    import_key_file: Option<PathBuf>,
    /// Development only: keep a new EVM key unencrypted in the node's store, as the devnet
    /// does (no password; whoever reads the data directory owns the account).
    #[arg(long, group = "evm")]
    dev_plaintext_key: bool,
    #[command(flatten)]
    key: KeyFlags,
}

pub(crate) fn run(args: InitArgs) -> anyhow::Result<()> {
    let evm = if let Some(f) = &args.import_keystore {
        EvmKeySetup::ImportKeystore(f.clone())
    } else if let Some(f) = &args.import_key_file {
        EvmKeySetup::ImportRawKey(f.clone())
    } else if args.dev_plaintext_key {
        EvmKeySetup::DevPlaintext
    } else {
        EvmKeySetup::NewKeystore
    };
    let keys = args.key.keys(&args.data_dir, None)?;
    let id = sietch_node::service::init_with(
        &args.data_dir,
        &InitOptions {
            force: args.force,
            evm,
            keys,
        },
    )?;
    if !id.created {
        println!("keys already exist (use --force to replace them)");
    }
    if let Some(old) = &id.replaced_keystore {
        println!("replaced keystore moved to {}", old.display());
    }
    println!("data directory {}", args.data_dir.display());
    println!("peer {}", id.peer);
    println!("evm address {}", id.evm_address);
    match &id.evm_key {
        KeyOrigin::Keystore { path, .. } => println!("keystore {}", path.display()),
        _ => println!("evm key unencrypted in the store (development only)"),
    }
    println!("config {}", args.data_dir.join(CONFIG_FILE).display());
    if let Some(w) = id.evm_key.warning(&args.data_dir) {
        println!("warning {w}");
    }
    Ok(())
}
