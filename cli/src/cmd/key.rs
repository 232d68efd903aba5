//! `sietch key`: the node's EVM key — move an unencrypted one into a keystore, export it —
//! and the flags every command that unlocks it shares (`docs/keys.md`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use sietch_node::config::{CONFIG_FILE, KeysConfig, NodeConfig};
use sietch_node::service::{self, ExportFormat};

/// Where the keystore is and where its password comes from; over `[keys]` in config.toml.
#[derive(Debug, Args)]
pub(crate) struct KeyFlags {
    /// The keystore holding the node's EVM key [default: `keys.keystore` in config.toml,
    /// else DATA_DIR/keystore/node.json].
    #[arg(long, env = "SIETCH_KEYSTORE", value_name = "FILE")]
    keystore: Option<PathBuf>,
    /// A file whose first line is the keystore's password [default:
    /// `keys.password_file`]. Without one the password comes from
    /// $SIETCH_KEYSTORE_PASSWORD, else from a prompt on the terminal.
    #[arg(long, env = "SIETCH_PASSWORD_FILE", value_name = "FILE")]
    password_file: Option<PathBuf>,
}

impl KeyFlags {
    /// Lays the flags over `keys` (relative paths from the current directory).
    pub(crate) fn layer(&self, keys: &mut KeysConfig) -> anyhow::Result<()> {
        let abs = |p: &Path| -> anyhow::Result<PathBuf> {
            Ok(if p.is_absolute() {
                p.to_owned()
            } else {
                std::env::current_dir()
                    .context("the current directory")?
                    .join(p)
            })
        };
        if let Some(k) = &self.keystore {
            keys.keystore = abs(k)?;
        }
        if let Some(p) = &self.password_file {
            keys.password_file = Some(abs(p)?);
        }
        Ok(())
    }

    /// `[keys]` of the data directory's config.toml (or `config`), with the flags over it.
    pub(crate) fn keys(
        &self,
        data_dir: &Path,
        config: Option<&Path>,
    ) -> anyhow::Result<KeysConfig> {
        let file = config.map_or_else(|| data_dir.join(CONFIG_FILE), Path::to_owned);
        let mut keys = NodeConfig::load(&file)?.keys;
        self.layer(&mut keys)?;
        keys.check()?;
        Ok(keys)
    }
}

#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Move an EVM key kept unencrypted in the node's store (made by an older sietch or
    /// with --dev-plaintext-key) into an encrypted keystore, then remove it from the store.
    Encrypt(Box<Common>),
    /// Write the node's EVM key to a new file (never over one; readable by you only): a
    /// keystore (Web3 Secret Storage v3, as geth, `cast wallet` and wallets read it) by
    /// default, or the raw key as hex with --raw-hex --dangerous.
    Export(Box<ExportArgs>),
}

#[derive(Debug, Args)]
struct Common {
    /// The node's data directory.
    #[arg(long, env = "SIETCH_DATA_DIR", default_value_os_t = super::default_data_dir())]
    data_dir: PathBuf,
    /// Configuration file [default: DATA_DIR/config.toml].
    #[arg(long, env = "SIETCH_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    key: KeyFlags,
}

impl Common {
    fn keys(&self) -> anyhow::Result<KeysConfig> {
        self.key.keys(&self.data_dir, self.config.as_deref())
    }
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The file to write (must not exist).
    out: PathBuf,
    /// Write the raw key as hex instead of a keystore. Whoever reads the file owns the
    /// account: only for a wallet that cannot read keystores. Needs --dangerous.
    #[arg(long, requires = "dangerous")]
    raw_hex: bool,
    /// Confirms --raw-hex: the key leaves its encryption.
    #[arg(long)]
    dangerous: bool,
    #[command(flatten)]
    common: Common,
}

pub(crate) fn run(args: KeyArgs) -> anyhow::Result<()> {
    match args.command {
        KeyCommand::Encrypt(c) => {
            let keys = c.keys()?;
            let (address, path) = service::encrypt_key(&c.data_dir, &keys)?;
            println!("evm address {address}");
            println!("keystore {}", path.display());
            println!("the store holds no unencrypted EVM key");
            Ok(())
        }
        KeyCommand::Export(a) => {
            let keys = a.common.keys()?;
            let format = if a.raw_hex {
                ExportFormat::RawHex
            } else {
                ExportFormat::Keystore
            };
            let address = service::export_key(&a.common.data_dir, &keys, &a.out, format)?;
            println!("evm address {address}");
            match format {
                ExportFormat::RawHex => println!(
                    "raw key {} (unencrypted: whoever reads it owns the account; delete it once used)",
                    a.out.display()
                ),
                _ => println!("keystore {}", a.out.display()),
            }
            Ok(())
        }
    }
}
