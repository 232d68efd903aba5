//! The keystore file (Web3 Secret Storage v3): checked field by field, opened, made, copied.
//! The cryptography is eth-keystore's.

use std::path::Path;

use alloy::signers::local::PrivateKeySigner;
use eth_keystore::{EthKeystore, KdfType, KdfparamsType};
use sietch_market::Address;
use zeroize::Zeroizing;

use super::files::{Bounded, make_parent, read_bounded, write_private};
use super::{KeyError, Password, PasswordSource};

/// A keystore file larger than this is not a keystore (they are about 500 bytes).
const MAX_KEYSTORE_BYTES: u64 = 64 * 1024;
/// The most memory a keystore's scrypt may ask for (geth's standard asks 256 MiB): a
/// keystore cannot make the node allocate without bound.
const MAX_SCRYPT_BYTES: u64 = 1 << 30;
/// The most PBKDF2 rounds a keystore may ask for (geth writes 262,144).
const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

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
    // The source named in an error here is never shown: the error is wrapped below.
    let back = open_keystore(path, password, &PasswordSource::Prompt);
    let failed = match back {
        Ok(s) if s.address() == signer.address() => return Ok(()),
        Ok(_) => encrypt("it reads back as another key".into()),
        Err(e) => encrypt(format!("it does not read back: {e}")),
    };
    // Not left in the way of a retry.
    let _ = std::fs::remove_file(path);
    Err(failed)
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

/// Copies the node's keystore (`from`) to a new file at `to`, as it is (same password).
pub fn export_keystore(from: &Path, to: &Path) -> Result<(), KeyError> {
    let checked = check_keystore(from)?;
    let bytes = serde_json::to_vec(&checked.json).map_err(|e| KeyError::Encrypt {
        path: to.to_owned(),
        why: e.to_string(),
    })?;
    write_private(to, &bytes)
}
