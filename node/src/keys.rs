//! The node's EVM key: kept encrypted in a keystore in the Ethereum format (Web3 Secret
//! Storage v3, scrypt and AES-128-CTR, the file geth, Foundry's `cast wallet` and most
//! wallets read and write), unlocked at start with a password from a file, from
//! `$SIETCH_KEYSTORE_PASSWORD` or from a prompt on the terminal (`docs/keys.md`).
//!
//! A key kept unencrypted in the node's store (older versions, the devnet and the in-process
//! tests, which start many nodes and need no scrypt) still works, with a warning at start and
//! a way out (`sietch key encrypt`, [`encrypt_stored_key`]).
//!
//! The secret never leaves this module except as a [`PrivateKeySigner`] (whose `Debug`
//! shows only its address) or into a file the operator asked for; passwords and raw keys are
//! wiped from memory when dropped, and no error or `Debug` output holds either.

mod error;
mod files;
mod keystore;
mod password;

use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;
use sietch_market::B256;

use crate::config::KeysConfig;

pub use error::KeyError;
pub use files::{export_raw_key, read_raw_key};
pub use keystore::{
    copy_keystore, create_keystore, export_keystore, keystore_address, open_keystore,
};
pub use password::{Password, PasswordSource, PasswordUse, password, password_file_warning};

/// The environment variable a keystore's password may come from.
pub const PASSWORD_ENV: &str = "SIETCH_KEYSTORE_PASSWORD";
/// The fewest characters a new keystore's password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Where the node's EVM key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyOrigin {
    /// An encrypted keystore; `plaintext_copy` when the store still holds the key
    /// unencrypted as well.
    Keystore {
        /// The keystore file.
        path: PathBuf,
        /// The store also holds the key, unencrypted.
        plaintext_copy: bool,
    },
    /// Unencrypted in the node's store (older versions, the devnet, `--dev-plaintext-key`).
    Store,
}

impl KeyOrigin {
    /// The warning an operator should see at start, if any: the key is unencrypted
    /// somewhere, and how to fix it.
    pub fn warning(&self, data_dir: &Path) -> Option<String> {
        match self {
            Self::Keystore {
                plaintext_copy: false,
                ..
            } => None,
            Self::Keystore { path, .. } => Some(format!(
                "the node's EVM key is in the keystore {} but also unencrypted in the store in {}: run `sietch key encrypt --data-dir {}` to remove the unencrypted copy",
                path.display(),
                data_dir.display(),
                data_dir.display()
            )),
            Self::Store => Some(format!(
                "the node's EVM key is not encrypted (kept in the store in {}, for development or by an older sietch): run `sietch key encrypt --data-dir {}` to move it into an encrypted keystore",
                data_dir.display(),
                data_dir.display()
            )),
        }
    }
}

/// The account of a key kept unencrypted in the store.
pub fn stored_signer(key: &B256) -> Result<PrivateKeySigner, KeyError> {
    PrivateKeySigner::from_bytes(key).map_err(|_| KeyError::InvalidKey {
        what: "the node's store".into(),
    })
}

/// The node's EVM key: the keystore's (`cfg.keystore`, unlocked with a password from
/// `cfg`'s sources) if it is there; else the key unencrypted in the store (`stored`), unless
/// the keystore's place was set explicitly. Reads no chain, sends nothing.
pub fn load(
    data_dir: &Path,
    cfg: &KeysConfig,
    stored: Option<&B256>,
) -> Result<(PrivateKeySigner, KeyOrigin), KeyError> {
    let path = cfg.keystore_path(data_dir);
    let exists = match std::fs::metadata(&path) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => return Err(KeyError::Read { path, source }),
    };
    if exists {
        // A malformed file is named before any password is asked for.
        keystore_address(&path)?;
        let (pw, from) = password(cfg, &path, PasswordUse::Unlock)?;
        let signer = open_keystore(&path, &pw, &from)?;
        if let Some(k) = stored {
            let s = stored_signer(k)?;
            if s.address() != signer.address() {
                return Err(KeyError::Conflict {
                    path,
                    keystore: signer.address(),
                    stored: s.address(),
                });
            }
        }
        return Ok((
            signer,
            KeyOrigin::Keystore {
                path,
                plaintext_copy: stored.is_some(),
            },
        ));
    }
    match stored {
        Some(k) if !cfg.keystore_is_set() => Ok((stored_signer(k)?, KeyOrigin::Store)),
        _ => Err(KeyError::MissingKeystore { path }),
    }
}

/// Moves a key kept unencrypted in the store into a new keystore at `cfg.keystore` (password
/// from `cfg`'s sources, as for a new keystore). The caller removes the stored copy once
/// this returns.
pub fn encrypt_stored_key(
    data_dir: &Path,
    cfg: &KeysConfig,
    stored: &B256,
) -> Result<PrivateKeySigner, KeyError> {
    let signer = stored_signer(stored)?;
    let path = cfg.keystore_path(data_dir);
    if path.exists() {
        // Already encrypted there: the same key, or a conflict.
        let (pw, from) = password(cfg, &path, PasswordUse::Unlock)?;
        let in_keystore = open_keystore(&path, &pw, &from)?;
        if in_keystore.address() != signer.address() {
            return Err(KeyError::Conflict {
                path,
                keystore: in_keystore.address(),
                stored: signer.address(),
            });
        }
        return Ok(signer);
    }
    let (pw, _) = password(cfg, &path, PasswordUse::New)?;
    create_keystore(&path, &signer, &pw)?;
    Ok(signer)
}

#[cfg(test)]
mod tests;
