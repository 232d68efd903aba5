//! `sietch init` and `sietch key`: a node's data directory with its keys (the ed25519
//! identity in the store, the EVM key in an encrypted keystore, `crate::keys`), its API
//! token and a commented `config.toml`; and the EVM key's migration out of the store and
//! its export.

use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;
use sietch_market::Address;

use crate::config::{ConfigError, KeysConfig, NodeConfig};
use crate::keys::{self, KeyError, KeyOrigin, PasswordUse};
use crate::net;
use crate::store::{NodeKeys, Store, StoreError};

/// Why [`init`], [`init_with`], [`encrypt_key`] or [`export_key`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The data directory could not be created.
    #[error("cannot create {}", dir.display())]
    CreateDir {
        /// The data directory.
        dir: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The store could not be opened, or the keys not read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The API token could not be read or made.
    #[error("the API token in {}", dir.display())]
    Token {
        /// The data directory.
        dir: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The commented `config.toml` could not be written.
    #[error("cannot write {}", path.display())]
    WriteConfig {
        /// The config file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// `[keys]` is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The EVM key, its keystore or its password.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A key was to be imported into a node that has keys.
    #[error(
        "{} has keys already: add --force to replace them (export the old EVM key first with `sietch key export` if its account holds anything)",
        dir.display()
    )]
    KeysExist {
        /// The data directory.
        dir: PathBuf,
    },
    /// The data directory has no keys (`sietch init` was not run).
    #[error("{} has no node keys: run `sietch init --data-dir {}` first", dir.display(), dir.display())]
    NoKeys {
        /// The data directory.
        dir: PathBuf,
    },
    /// The replaced keystore could not be moved aside.
    #[error("cannot move the replaced keystore {} aside", path.display())]
    MoveAside {
        /// The old keystore.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// How `sietch init` sets up the node's EVM key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvmKeySetup {
    /// A new random key in a new encrypted keystore (the default).
    NewKeystore,
    /// The key of an existing keystore file (geth, cast, a wallet, another node), copied as
    /// it is: it keeps its password.
    ImportKeystore(PathBuf),
    /// The key in a raw key file (64 hex digits), encrypted into a new keystore.
    ImportRawKey(PathBuf),
    /// Development only: a new key kept unencrypted in the store (the devnet and the tests,
    /// which start many nodes and need no scrypt nor password). Warned about at each start.
    DevPlaintext,
}

/// What [`init_with`] does.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Replace existing keys (the old identity is lost; an old keystore is moved aside,
    /// never deleted).
    pub force: bool,
    /// How the EVM key is made or brought.
    pub evm: EvmKeySetup,
    /// Where the keystore goes and where its password comes from.
    pub keys: KeysConfig,
}

/// What `sietch init` made or found.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The libp2p peer id (from the ed25519 key).
    pub peer: libp2p::PeerId,
    /// The EVM account.
    pub evm_address: Address,
    /// Where the EVM key is.
    pub evm_key: KeyOrigin,
    /// Whether the keys were made now (false: they existed and were kept).
    pub created: bool,
    /// Where a replaced keystore was moved (`--force`).
    pub replaced_keystore: Option<PathBuf>,
}

/// Development only: [`init_with`] keeping a new EVM key unencrypted in the store
/// ([`EvmKeySetup::DevPlaintext`]), as the devnet and the in-process tests do. Keys that
/// exist are kept unless `force`.
pub fn init(data_dir: &Path, force: bool) -> Result<Identity, InitError> {
    init_with(
        data_dir,
        &InitOptions {
            force,
            evm: EvmKeySetup::DevPlaintext,
            keys: KeysConfig::default(),
        },
    )
}

/// Creates `data_dir` with new keys (or keeps the keys it has, unless `force`), the API
/// token and a commented `config.toml` if there is none. Everything that can be refused
/// (a password, a file to import) is settled before anything is replaced.
pub fn init_with(data_dir: &Path, opts: &InitOptions) -> Result<Identity, InitError> {
    opts.keys.check()?;
    std::fs::create_dir_all(data_dir).map_err(|source| InitError::CreateDir {
        dir: data_dir.to_owned(),
        source,
    })?;
    let store = Store::open(data_dir)?;
    let keystore = opts.keys.keystore_path(data_dir);
    let existing = store.node_keys()?;
    let identity = match existing {
        Some(keys) if !opts.force => {
            if matches!(
                opts.evm,
                EvmKeySetup::ImportKeystore(_) | EvmKeySetup::ImportRawKey(_)
            ) {
                return Err(InitError::KeysExist {
                    dir: data_dir.to_owned(),
                });
            }
            let (evm_address, evm_key) = kept_account(data_dir, &opts.keys, &keys)?;
            Identity {
                peer: net::keypair(&keys.ed25519).public().to_peer_id(),
                evm_address,
                evm_key,
                created: false,
                replaced_keystore: None,
            }
        }
        _ => {
            let new = new_evm_key(&opts.evm, &opts.keys, &keystore)?;
            let replaced_keystore = if opts.force && !new.in_place {
                move_aside(&keystore)?
            } else {
                None
            };
            let evm_key = match &new.write {
                Write::Keystore(pw) => {
                    keys::create_keystore(&keystore, &new.signer, pw)?;
                    KeyOrigin::Keystore {
                        path: keystore.clone(),
                        plaintext_copy: false,
                    }
                }
                Write::Copy(from) => {
                    keys::copy_keystore(from, &keystore, new.signer.address())?;
                    KeyOrigin::Keystore {
                        path: keystore.clone(),
                        plaintext_copy: false,
                    }
                }
                Write::InPlace => KeyOrigin::Keystore {
                    path: keystore.clone(),
                    plaintext_copy: false,
                },
                Write::Store => KeyOrigin::Store,
            };
            let fresh = NodeKeys {
                ed25519: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
                evm: matches!(new.write, Write::Store).then(|| new.signer.to_bytes()),
            };
            store.replace_node_keys(&fresh)?;
            Identity {
                peer: net::keypair(&fresh.ed25519).public().to_peer_id(),
                evm_address: new.signer.address(),
                evm_key,
                created: true,
                replaced_keystore,
            }
        }
    };
    crate::api::load_or_create_token(data_dir).map_err(|source| InitError::Token {
        dir: data_dir.to_owned(),
        source,
    })?;
    let config = data_dir.join(crate::config::CONFIG_FILE);
    if !config.exists() {
        std::fs::write(&config, NodeConfig::template()).map_err(|source| {
            InitError::WriteConfig {
                path: config.clone(),
                source,
            }
        })?;
    }
    Ok(identity)
}

/// A new EVM key and how it is to be written.
struct NewKey {
    signer: PrivateKeySigner,
    write: Write,
    /// The keystore in place is the one imported: nothing to move aside.
    in_place: bool,
}

enum Write {
    Keystore(keys::Password),
    Copy(PathBuf),
    InPlace,
    Store,
}

fn new_evm_key(setup: &EvmKeySetup, cfg: &KeysConfig, keystore: &Path) -> Result<NewKey, KeyError> {
    let new_password = || keys::password(cfg, keystore, PasswordUse::New).map(|(p, _)| p);
    Ok(match setup {
        EvmKeySetup::NewKeystore => NewKey {
            signer: PrivateKeySigner::random(),
            write: Write::Keystore(new_password()?),
            in_place: false,
        },
        EvmKeySetup::ImportRawKey(file) => NewKey {
            signer: keys::read_raw_key(file)?,
            write: Write::Keystore(new_password()?),
            in_place: false,
        },
        EvmKeySetup::ImportKeystore(file) => {
            let (pw, from) = keys::password(cfg, file, PasswordUse::Unlock)?;
            let signer = keys::open_keystore(file, &pw, &from)?;
            let same = matches!(
                (file.canonicalize(), keystore.canonicalize()),
                (Ok(a), Ok(b)) if a == b
            );
            NewKey {
                signer,
                write: if same {
                    Write::InPlace
                } else {
                    Write::Copy(file.clone())
                },
                in_place: same,
            }
        }
        EvmKeySetup::DevPlaintext => NewKey {
            signer: PrivateKeySigner::random(),
            write: Write::Store,
            in_place: false,
        },
    })
}

/// Moves a keystore that is being replaced to `<name>.replaced-<unix seconds>` beside it:
/// a key that may hold money is never deleted.
fn move_aside(keystore: &Path) -> Result<Option<PathBuf>, InitError> {
    if !keystore.exists() {
        return Ok(None);
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = keystore
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let to = keystore.with_file_name(format!("{name}.replaced-{secs}"));
    std::fs::rename(keystore, &to).map_err(|source| InitError::MoveAside {
        path: keystore.to_owned(),
        source,
    })?;
    Ok(Some(to))
}

/// The account of keys kept by `init`: the keystore's `address` field (no password
/// needed), else the keystore opened, else the key in the store.
fn kept_account(
    data_dir: &Path,
    cfg: &KeysConfig,
    keys: &NodeKeys,
) -> Result<(Address, KeyOrigin), KeyError> {
    let path = cfg.keystore_path(data_dir);
    if path.exists()
        && let Some(a) = keys::keystore_address(&path)?
    {
        return Ok((
            a,
            KeyOrigin::Keystore {
                path,
                plaintext_copy: keys.evm.is_some(),
            },
        ));
    }
    let (signer, origin) = keys::load(data_dir, cfg, keys.evm.as_ref())?;
    Ok((signer.address(), origin))
}

fn open_keys(data_dir: &Path) -> Result<(Store, NodeKeys), InitError> {
    if !data_dir.is_dir() {
        return Err(InitError::NoKeys {
            dir: data_dir.to_owned(),
        });
    }
    let store = Store::open(data_dir)?;
    let keys = store.node_keys()?.ok_or_else(|| InitError::NoKeys {
        dir: data_dir.to_owned(),
    })?;
    Ok((store, keys))
}

/// `sietch key encrypt`: moves an EVM key kept unencrypted in the store into a new
/// keystore (password from `cfg`'s sources), then removes it from the store. A node whose
/// key is already in its keystore is left as it is. Returns the account and the keystore.
pub fn encrypt_key(data_dir: &Path, cfg: &KeysConfig) -> Result<(Address, PathBuf), InitError> {
    cfg.check()?;
    let (store, keys) = open_keys(data_dir)?;
    let path = cfg.keystore_path(data_dir);
    let Some(stored) = keys.evm else {
        let (signer, _) = keys::load(data_dir, cfg, None)?;
        return Ok((signer.address(), path));
    };
    let signer = keys::encrypt_stored_key(data_dir, cfg, &stored)?;
    // The keystore is written and read back: only now is the stored copy dropped.
    store.replace_node_keys(&NodeKeys {
        ed25519: keys.ed25519.clone(),
        evm: None,
    })?;
    Ok((signer.address(), path))
}

/// How `sietch key export` writes the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportFormat {
    /// An encrypted keystore: the node's own, copied as it is (same password); or, for a
    /// key kept unencrypted in the store, a new one (password from the sources).
    Keystore,
    /// The raw key as hex: whoever reads the file owns the account.
    RawHex,
}

/// `sietch key export`: writes the node's EVM key to a new file `to` (0600, never over a
/// file). Returns the account.
pub fn export_key(
    data_dir: &Path,
    cfg: &KeysConfig,
    to: &Path,
    format: ExportFormat,
) -> Result<Address, InitError> {
    cfg.check()?;
    let (_store, keys) = open_keys(data_dir)?;
    let path = cfg.keystore_path(data_dir);
    match format {
        ExportFormat::Keystore if path.exists() => {
            keys::export_keystore(&path, to)?;
            match keys::keystore_address(to)? {
                Some(a) => Ok(a),
                None => Ok(keys::load(data_dir, cfg, keys.evm.as_ref())?.0.address()),
            }
        }
        ExportFormat::Keystore => {
            let (signer, _) = keys::load(data_dir, cfg, keys.evm.as_ref())?;
            let (pw, _) = keys::password(cfg, to, PasswordUse::New)?;
            keys::create_keystore(to, &signer, &pw)?;
            Ok(signer.address())
        }
        ExportFormat::RawHex => {
            let (signer, _) = keys::load(data_dir, cfg, keys.evm.as_ref())?;
            keys::export_raw_key(&signer, to)?;
            Ok(signer.address())
        }
    }
}
