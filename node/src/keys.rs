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

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;
use eth_keystore::{EthKeystore, KdfType, KdfparamsType};
use sietch_market::{Address, B256};
use zeroize::Zeroizing;

use crate::config::KeysConfig;

/// The environment variable a keystore's password may come from.
pub const PASSWORD_ENV: &str = "SIETCH_KEYSTORE_PASSWORD";
/// The fewest characters a new keystore's password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A keystore file larger than this is not a keystore (they are about 500 bytes).
const MAX_KEYSTORE_BYTES: u64 = 64 * 1024;
/// A password file larger than this is not a password file.
const MAX_PASSWORD_FILE_BYTES: u64 = 4096;
/// A raw key file larger than this is not a raw key file.
const MAX_RAW_KEY_FILE_BYTES: u64 = 1024;
/// The most memory a keystore's scrypt may ask for (geth's standard asks 256 MiB): a
/// keystore cannot make the node allocate without bound.
const MAX_SCRYPT_BYTES: u64 = 1 << 30;
/// The most PBKDF2 rounds a keystore may ask for (geth writes 262,144).
const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

/// A password: wiped from memory when dropped, never printed.
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(password: String) -> Self {
        Self(Zeroizing::new(password))
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<secret>)")
    }
}

/// Where a password came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordSource {
    /// A file (`keys.password_file`, `--password-file`).
    File(PathBuf),
    /// `$SIETCH_KEYSTORE_PASSWORD`.
    Env,
    /// A prompt on the terminal.
    Prompt,
}

impl fmt::Display for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "the password file {}", p.display()),
            Self::Env => write!(f, "${PASSWORD_ENV}"),
            Self::Prompt => f.write_str("the terminal"),
        }
    }
}

/// What a password is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordUse {
    /// Opening an existing keystore.
    Unlock,
    /// Making a new keystore: at least [`MIN_PASSWORD_CHARS`], asked twice on a terminal.
    New,
}

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

// ---- passwords ----

/// The password for `keystore`: from `cfg.password_file` if set, else from
/// `$SIETCH_KEYSTORE_PASSWORD`, else asked on the terminal (twice for a new keystore); an
/// error when none of them is there.
pub fn password(
    cfg: &KeysConfig,
    keystore: &Path,
    usage: PasswordUse,
) -> Result<(Password, PasswordSource), KeyError> {
    let env = std::env::var_os(PASSWORD_ENV);
    let terminal = std::io::stdin().is_terminal();
    password_from(cfg, keystore, usage, env, terminal)
}

fn password_from(
    cfg: &KeysConfig,
    keystore: &Path,
    usage: PasswordUse,
    env: Option<std::ffi::OsString>,
    terminal: bool,
) -> Result<(Password, PasswordSource), KeyError> {
    let (pw, from) = if let Some(path) = &cfg.password_file {
        let from = PasswordSource::File(path.clone());
        (read_password_file(path, &from)?, from)
    } else if let Some(v) = env {
        let text = v.into_string().map_err(|_| KeyError::BadPassword {
            from: PasswordSource::Env,
            why: "not UTF-8 text",
        })?;
        (Password::new(text), PasswordSource::Env)
    } else if terminal {
        (prompt(keystore, usage)?, PasswordSource::Prompt)
    } else {
        return Err(KeyError::NoPassword {
            keystore: keystore.to_owned(),
        });
    };
    if pw.0.is_empty() {
        return Err(KeyError::BadPassword { from, why: "empty" });
    }
    if usage == PasswordUse::New && pw.0.chars().count() < MIN_PASSWORD_CHARS {
        return Err(KeyError::WeakPassword { from });
    }
    Ok((pw, from))
}

/// A warning when the password file (if one is set) can be read by other users than its
/// owner: the password is as good as the file's permissions.
pub fn password_file_warning(cfg: &KeysConfig) -> Option<String> {
    let path = cfg.password_file.as_ref()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Some(format!(
                "the keystore's password file {} can be read by other users (mode {mode:o}): run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

/// The first line of a password file, without its line ending.
fn read_password_file(path: &Path, from: &PasswordSource) -> Result<Password, KeyError> {
    let err = |source| KeyError::PasswordFile {
        path: path.to_owned(),
        source,
    };
    let bytes = Zeroizing::new(read_bounded(path, MAX_PASSWORD_FILE_BYTES).map_err(
        |e| match e {
            Bounded::Io(source) => err(source),
            Bounded::TooLarge => KeyError::BadPassword {
                from: from.clone(),
                why: "in a file over 4 KiB",
            },
        },
    )?);
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::BadPassword {
        from: from.clone(),
        why: "not UTF-8 text",
    })?;
    let line = text.lines().next().unwrap_or("");
    Ok(Password::new(line.to_owned()))
}

fn prompt(keystore: &Path, usage: PasswordUse) -> Result<Password, KeyError> {
    let ask = |p: String| {
        rpassword::prompt_password(p)
            .map(Password::new)
            .map_err(KeyError::Prompt)
    };
    match usage {
        PasswordUse::Unlock => ask(format!(
            "Password for the keystore {}: ",
            keystore.display()
        )),
        PasswordUse::New => {
            let first = ask(format!(
                "New password for the keystore {} (at least {MIN_PASSWORD_CHARS} characters): ",
                keystore.display()
            ))?;
            let again = ask("The same password again: ".into())?;
            if first.bytes() != again.bytes() {
                return Err(KeyError::PasswordsDiffer);
            }
            Ok(first)
        }
    }
}

// ---- files ----

enum Bounded {
    Io(std::io::Error),
    TooLarge,
}

/// A file's bytes, refused over `max` (a wrong path must not read a disk image into memory).
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, Bounded> {
    let f = File::open(path).map_err(Bounded::Io)?;
    let mut out = Vec::new();
    f.take(max + 1).read_to_end(&mut out).map_err(Bounded::Io)?;
    if out.len() as u64 > max {
        return Err(Bounded::TooLarge);
    }
    Ok(out)
}

/// Creates `path` for the owner alone (0600), never replacing a file, and writes `bytes`.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let werr = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_owned(),
            }
        } else {
            werr(e)
        }
    })?;
    f.write_all(bytes).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    Ok(())
}

/// Makes the directory a keystore goes in (0700 where it is new).
fn make_parent(path: &Path) -> Result<(), KeyError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.exists() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|source| KeyError::Write {
        path: dir.to_owned(),
        source,
    })
}

// ---- keystores ----

/// A keystore read and checked, not yet decrypted.
struct Checked {
    /// The file's JSON, as read.
    json: serde_json::Value,
    /// The account named in its `address` field, if it has one.
    address: Option<Address>,
}

/// Reads `path` and checks every field a decryption relies on, so that a malformed file
/// is named as such (and cannot make the decryption allocate without bound or fail
/// obscurely) before the password is tried.
fn check_keystore(path: &Path) -> Result<Checked, KeyError> {
    let malformed = |why: String| KeyError::MalformedKeystore {
        path: path.to_owned(),
        why,
    };
    let bytes = match read_bounded(path, MAX_KEYSTORE_BYTES) {
        Ok(b) => b,
        Err(Bounded::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::MissingKeystore {
                path: path.to_owned(),
            });
        }
        Err(Bounded::Io(source)) => {
            return Err(KeyError::Read {
                path: path.to_owned(),
                source,
            });
        }
        Err(Bounded::TooLarge) => return Err(malformed("larger than 64 KiB".into())),
    };
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| malformed(json_error(&e)))?;
    let ks: EthKeystore =
        serde_json::from_value(json.clone()).map_err(|e| malformed(json_error(&e)))?;
    if ks.version != 3 {
        return Err(malformed(format!(
            "version {} (only version 3 is read)",
            ks.version
        )));
    }
    let c = &ks.crypto;
    if c.cipher != "aes-128-ctr" {
        return Err(malformed(format!(
            "cipher {:?} (only aes-128-ctr is read)",
            c.cipher.chars().take(32).collect::<String>()
        )));
    }
    if c.cipherparams.iv.len() != 16 {
        return Err(malformed(format!(
            "an IV of {} bytes (16 expected)",
            c.cipherparams.iv.len()
        )));
    }
    if c.ciphertext.len() != 32 {
        return Err(malformed(format!(
            "a ciphertext of {} bytes (a 32-byte key expected)",
            c.ciphertext.len()
        )));
    }
    if c.mac.len() != 32 {
        return Err(malformed(format!(
            "a MAC of {} bytes (32 expected)",
            c.mac.len()
        )));
    }
    match (&c.kdf, &c.kdfparams) {
        (
            KdfType::Scrypt,
            KdfparamsType::Scrypt {
                dklen,
                n,
                p,
                r,
                salt,
            },
        ) => {
            if *dklen != 32 {
                return Err(malformed(format!("scrypt dklen {dklen} (32 expected)")));
            }
            if *n < 2 || !n.is_power_of_two() {
                return Err(malformed(format!("scrypt n {n} is not a power of two")));
            }
            if *r == 0 || *p == 0 || *p > 16 {
                return Err(malformed(format!(
                    "scrypt r {r} and p {p} (both at least 1, p at most 16)"
                )));
            }
            let memory = 128 * u64::from(*r) * u64::from(*n);
            if memory > MAX_SCRYPT_BYTES {
                return Err(malformed(format!(
                    "scrypt n {n} and r {r} ask for {} MiB (at most 1024)",
                    memory >> 20
                )));
            }
            if salt.is_empty() {
                return Err(malformed("an empty salt".into()));
            }
        }
        (
            KdfType::Pbkdf2,
            KdfparamsType::Pbkdf2 {
                c: rounds,
                dklen,
                prf,
                salt,
            },
        ) => {
            if *dklen != 32 {
                return Err(malformed(format!("pbkdf2 dklen {dklen} (32 expected)")));
            }
            if prf != "hmac-sha256" {
                return Err(malformed("a pbkdf2 prf other than hmac-sha256".into()));
            }
            if *rounds == 0 || *rounds > MAX_PBKDF2_ROUNDS {
                return Err(malformed(format!(
                    "pbkdf2 c {rounds} (1 to {MAX_PBKDF2_ROUNDS})"
                )));
            }
            if salt.is_empty() {
                return Err(malformed("an empty salt".into()));
            }
        }
        _ => return Err(malformed("kdf and kdfparams disagree".into())),
    }
    let address = match json.get("address") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => {
            let hex = s.strip_prefix("0x").unwrap_or(s);
            Some(
                hex.parse::<Address>()
                    .map_err(|_| malformed("an address field that is not an address".into()))?,
            )
        }
        Some(_) => return Err(malformed("an address field that is not a string".into())),
    };
    Ok(Checked { json, address })
}

/// A JSON error's kind and place, without the text it quotes (which may be anything the
/// file holds).
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "unreadable".to_owned(),
        Category::Syntax | Category::Eof => "not JSON".to_owned(),
        Category::Data => {
            // Serde's messages name fields in backticks and quote values in double quotes:
            // keep the names, drop the values.
            let msg = e.to_string();
            let mut out = String::new();
            let mut quoted = false;
            for ch in msg.chars() {
                if ch == '"' {
                    if !quoted {
                        out.push_str("\"…\"");
                    }
                    quoted = !quoted;
                } else if !quoted {
                    out.push(ch);
                }
            }
            // The place is added below.
            match out.find(" at line ") {
                Some(i) => out[..i].to_owned(),
                None => out,
            }
        }
    };
    if e.line() == 0 {
        what
    } else {
        format!("{what} (line {}, column {})", e.line(), e.column())
    }
}

/// The account a keystore names in its `address` field (geth, cast and `sietch` write one),
/// read without the password; `None` when it has none.
pub fn keystore_address(path: &Path) -> Result<Option<Address>, KeyError> {
    Ok(check_keystore(path)?.address)
}

/// Opens the keystore at `path` with `password` (`from` names where the password came
/// from, for the error).
pub fn open_keystore(
    path: &Path,
    password: &Password,
    from: &PasswordSource,
) -> Result<PrivateKeySigner, KeyError> {
    let checked = check_keystore(path)?;
    let secret = Zeroizing::new(eth_keystore::decrypt_key(path, password.bytes()).map_err(
        |e| match e {
            eth_keystore::KeystoreError::MacMismatch => KeyError::WrongPassword {
                path: path.to_owned(),
                from: from.clone(),
            },
            eth_keystore::KeystoreError::StdIo(why) => KeyError::Read {
                path: path.to_owned(),
                source: std::io::Error::other(why),
            },
            other => KeyError::MalformedKeystore {
                path: path.to_owned(),
                why: other.to_string(),
            },
        },
    )?);
    let signer = PrivateKeySigner::from_slice(&secret).map_err(|_| KeyError::InvalidKey {
        what: format!("the keystore {}", path.display()),
    })?;
    if let Some(a) = checked.address
        && a != signer.address()
    {
        return Err(KeyError::MalformedKeystore {
            path: path.to_owned(),
            why: format!(
                "its address field says {a} but its key is {}'s",
                signer.address()
            ),
        });
    }
    Ok(signer)
}

/// Encrypts `signer`'s key with `password` into a new keystore at `path` (never replacing
/// a file), readable by the node's user only, with the `address` field geth and cast
/// write; then opens it again, so a keystore that cannot be read back is never left as the
/// only copy of a key.
pub fn create_keystore(
    path: &Path,
    signer: &PrivateKeySigner,
    password: &Password,
) -> Result<(), KeyError> {
    let encrypt = |why: String| KeyError::Encrypt {
        path: path.to_owned(),
        why,
    };
    make_parent(path)?;
    if path.exists() {
        return Err(KeyError::Exists {
            path: path.to_owned(),
        });
    }
    // eth-keystore writes into a directory with the umask's permissions: write there in a
    // private directory of our own beside the target, then copy it out at 0600.
    let dir = path.parent().unwrap_or(Path::new("."));
    let scratch = dir.join(format!(".sietch-keystore-{}", rand::random::<u64>()));
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(&scratch).map_err(|source| KeyError::Write {
        path: scratch.clone(),
        source,
    })?;
    let written = (|| {
        let secret = Zeroizing::new(signer.to_bytes().0);
        eth_keystore::encrypt_key(
            &scratch,
            &mut rand::rngs::OsRng,
            secret.as_slice(),
            password.bytes(),
            Some("key.json"),
        )
        .map_err(|e| encrypt(e.to_string()))?;
        let text = std::fs::read(scratch.join("key.json")).map_err(|source| KeyError::Read {
            path: scratch.join("key.json"),
            source,
        })?;
        let mut json: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| encrypt(e.to_string()))?;
        if let Some(o) = json.as_object_mut() {
            o.insert(
                "address".into(),
                hex::encode(signer.address().as_slice()).into(),
            );
        }
        serde_json::to_vec(&json).map_err(|e| encrypt(e.to_string()))
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    write_private(path, &written?)?;
    let back = open_keystore(path, password, &PasswordSource::Prompt);
    match back {
        Ok(s) if s.address() == signer.address() => Ok(()),
        Ok(_) => Err(encrypt("it reads back as another key".into())),
        Err(e) => Err(encrypt(format!("it does not read back: {e}"))),
    }
}

/// Copies the keystore at `from` (opened by the caller, so known good: `address` is its
/// account) to a new file `to`, adding the `address` field where it has none; it keeps its
/// password.
pub fn copy_keystore(from: &Path, to: &Path, address: Address) -> Result<(), KeyError> {
    let mut checked = check_keystore(from)?;
    if checked.address.is_none()
        && let Some(o) = checked.json.as_object_mut()
    {
        o.insert("address".into(), hex::encode(address.as_slice()).into());
    }
    let bytes = serde_json::to_vec(&checked.json).map_err(|e| KeyError::Encrypt {
        path: to.to_owned(),
        why: e.to_string(),
    })?;
    make_parent(to)?;
    write_private(to, &bytes)
}

/// The key in a raw key file: 64 hex digits, with or without `0x`, alone in the file
/// (surrounding white space allowed).
pub fn read_raw_key(path: &Path) -> Result<PrivateKeySigner, KeyError> {
    let bad = |why| KeyError::RawKeyFile {
        path: path.to_owned(),
        why,
    };
    let bytes = Zeroizing::new(read_bounded(path, MAX_RAW_KEY_FILE_BYTES).map_err(
        |e| match e {
            Bounded::Io(source) => KeyError::Read {
                path: path.to_owned(),
                source,
            },
            Bounded::TooLarge => bad("the file is over 1 KiB"),
        },
    )?);
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("the file is not text"))?;
    let t = text.trim();
    let hex = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if hex.len() != 64 {
        return Err(bad("not 64 hex digits"));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex, key.as_mut_slice()).map_err(|_| bad("not hex"))?;
    PrivateKeySigner::from_slice(key.as_slice()).map_err(|_| KeyError::InvalidKey {
        what: path.display().to_string(),
    })
}

/// Writes `signer`'s key as raw hex (`0x…` and a new line) to a new file at `path`,
/// readable by its owner only. Anyone who reads the file owns the account: for moving the
/// key into a wallet that cannot read keystores.
pub fn export_raw_key(signer: &PrivateKeySigner, path: &Path) -> Result<(), KeyError> {
    let text = Zeroizing::new(format!("0x{}\n", hex::encode(signer.to_bytes())));
    write_private(path, text.as_bytes())
}

/// Copies the node's keystore (`from`) to a new file at `to`, as it is (same password).
pub fn export_keystore(from: &Path, to: &Path) -> Result<(), KeyError> {
    let checked = check_keystore(from)?;
    let bytes = serde_json::to_vec(&checked.json).map_err(|e| KeyError::Encrypt {
        path: to.to_owned(),
        why: e.to_string(),
    })?;
    write_private(to, &bytes)
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
        check_keystore(&path)?;
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
