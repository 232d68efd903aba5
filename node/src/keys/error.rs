//! What can go wrong with the node's EVM key, its keystore or its password.

use std::path::PathBuf;

use sietch_market::Address;

use super::{MIN_PASSWORD_CHARS, PASSWORD_ENV, PasswordSource};

/// What went wrong with a key, a keystore or a password. No variant holds a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No password source was set and there is no terminal to ask on.
    #[error(
        "no password for the keystore {}: name a file holding it (`keys.password_file` in config.toml, or --password-file), set ${PASSWORD_ENV}, or run in a terminal to be asked",
        keystore.display()
    )]
    NoPassword {
        /// The keystore the password is for.
        keystore: PathBuf,
    },
    /// The password file cannot be read.
    #[error("cannot read the password file {}: {source}", path.display())]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The password read is empty, too large or not text.
    #[error("the password from {from} is {why}")]
    BadPassword {
        /// Where it came from.
        from: PasswordSource,
        /// What is wrong with it (never the password).
        why: &'static str,
    },
    /// A new keystore's password is too short.
    #[error(
        "the password from {from} is too short for a new keystore: use at least {MIN_PASSWORD_CHARS} characters"
    )]
    WeakPassword {
        /// Where it came from.
        from: PasswordSource,
    },
    /// The two passwords typed differ.
    #[error("the passwords typed differ")]
    PasswordsDiffer,
    /// The terminal could not be read.
    #[error("cannot read the password from the terminal: {0}")]
    Prompt(#[source] std::io::Error),
    /// The keystore file does not exist.
    #[error(
        "no keystore at {}: make one with `sietch init`, bring one with `sietch init --import-keystore FILE --force`, or set `keys.keystore` in config.toml to where it is",
        path.display()
    )]
    MissingKeystore {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file (keystore, raw key) cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The keystore is not a valid Web3 Secret Storage v3 file.
    #[error("{} is not a usable Ethereum keystore (Web3 Secret Storage v3): {why}", path.display())]
    MalformedKeystore {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the key).
        why: String,
    },
    /// The password does not open the keystore.
    #[error(
        "wrong password for the keystore {} (its MAC does not match): check the password from {from}",
        path.display()
    )]
    WrongPassword {
        /// The keystore.
        path: PathBuf,
        /// Where the password came from.
        from: PasswordSource,
    },
    /// A raw key file does not hold one key.
    #[error(
        "{} does not hold a raw EVM key: {why} (expected 64 hex digits, with or without 0x, alone in the file)",
        path.display()
    )]
    RawKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the file's content).
        why: &'static str,
    },
    /// The key is not a valid secp256k1 secret key (zero, or not below the curve's order).
    #[error("the key from {what} is not a valid secp256k1 secret key")]
    InvalidKey {
        /// Where it came from.
        what: String,
    },
    /// A file to write exists already.
    #[error("{} exists already: not overwritten (move it away or name another file)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The keystore could not be made.
    #[error("cannot make the keystore {}: {why}", path.display())]
    Encrypt {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The keystore and the store hold different keys.
    #[error(
        "the keystore {} holds the key of {keystore} but the node's store holds another, unencrypted, for {stored}: keep one (move the keystore away to use the stored key, or `sietch init --force` with --import-keystore)",
        path.display()
    )]
    Conflict {
        /// The keystore.
        path: PathBuf,
        /// The keystore's account.
        keystore: Address,
        /// The stored key's account.
        stored: Address,
    },
    /// The work was interrupted (the runtime is shutting down).
    #[error("unlocking the key was interrupted")]
    Interrupted,
}
