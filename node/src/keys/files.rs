//! Files that hold a key: read bounded, written for their owner only and never over another
//! file; the raw key file (64 hex digits), read and exported.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use alloy::signers::local::PrivateKeySigner;
use zeroize::Zeroizing;

use super::KeyError;

/// A raw key file larger than this is not a raw key file.
const MAX_RAW_KEY_FILE_BYTES: u64 = 1024;

pub(super) enum Bounded {
    Io(std::io::Error),
    TooLarge,
}

/// A file's bytes, refused over `max` (a wrong path must not read a disk image into memory).
pub(super) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, Bounded> {
    let f = File::open(path).map_err(Bounded::Io)?;
    let mut out = Vec::new();
    f.take(max + 1).read_to_end(&mut out).map_err(Bounded::Io)?;
    if out.len() as u64 > max {
        return Err(Bounded::TooLarge);
    }
    Ok(out)
}

/// Creates `path` for the owner alone (0600), never replacing a file, and writes `bytes`.
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
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
pub(super) fn make_parent(path: &Path) -> Result<(), KeyError> {
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
