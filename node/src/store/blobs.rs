//! Content-addressed blobs (modules, inputs, outputs) in `blobs/<blake3 hex>`.
//!
//! A blob becomes visible under its hash only whole: it is written to a temporary file in the
//! same directory, flushed to disk, renamed over its final name (atomic on POSIX) and the
//! directory is flushed so the rename itself survives a crash. A temporary file left by a
//! crash is never mistaken for a blob (its name is not a hash) and is removed at the next
//! open. Reads hash the bytes again: disks and people damage files, and a blob that no
//! longer matches its name is removed and reported instead of being handed to the sandbox.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sietch_market::B256;

use super::error::BlobError;

/// Prefix of temporary files; never a valid hash name.
const TMP_PREFIX: &str = ".tmp-";

/// The default bound on one blob: 256 MiB, enough for large modules and inputs, and small
/// enough to hold in memory while it is hashed and sent.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 256 << 20;

/// The blob directory. Cheap to share behind the [`super::Store`]; safe to use from several
/// threads.
#[derive(Debug)]
pub struct Blobs {
    dir: PathBuf,
    max_blob_bytes: u64,
    /// Serialises the publish/remove step with the size figure.
    totals: Mutex<Totals>,
    tmp_counter: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    bytes: u64,
    count: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether a file name is a blob's name: 64 lowercase hex digits.
fn parse_name(name: &str) -> Option<B256> {
    if name.len() != 64 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(name, &mut out).ok()?;
    Some(B256::from(out))
}

/// Writes a new file and flushes it to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BlobError> {
    let mut f = File::create_new(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// The blake3 hash of `bytes` as a [`B256`].
pub fn blob_hash(bytes: &[u8]) -> B256 {
    B256::from(*blake3::hash(bytes).as_bytes())
}

impl Blobs {
    /// Opens (creating it if needed) the blob directory `dir`, removes temporary files left
    /// by a crash and adds up the sizes of the blobs in it.
    pub fn open(dir: impl Into<PathBuf>, max_blob_bytes: u64) -> Result<Self, BlobError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut totals = Totals::default();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                let path = entry.path();
                tracing::debug!("removing {} left by an interrupted write", path.display());
                fs::remove_file(&path).map_err(io(&path))?;
            } else if parse_name(name).is_some() {
                let meta = entry.metadata().map_err(io(&entry.path()))?;
                totals.bytes = totals.bytes.saturating_add(meta.len());
                totals.count += 1;
            }
        }
        Ok(Self {
            dir,
            max_blob_bytes,
            totals: Mutex::new(totals),
            tmp_counter: AtomicU64::new(0),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bound on one blob, in bytes.
    pub fn max_blob_bytes(&self) -> u64 {
        self.max_blob_bytes
    }

    /// Where the blob with this hash is (or would be) stored.
    pub fn path(&self, hash: &B256) -> PathBuf {
        self.dir.join(hex::encode(hash))
    }

    /// Whether a blob with this hash is stored (its content is checked on [`Blobs::get`]).
    pub fn has(&self, hash: &B256) -> bool {
        self.path(hash).is_file()
    }

    /// Total bytes and number of blobs stored.
    pub fn total(&self) -> (u64, u64) {
        let t = self.lock();
        (t.bytes, t.count)
    }

    /// Total bytes of all blobs.
    pub fn total_bytes(&self) -> u64 {
        self.total().0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Totals> {
        // A panic while holding the lock cannot leave the counters inconsistent with
        // anything that matters more than a size figure; keep going.
        self.totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores `bytes` and returns their hash. Storing a blob that is already there is a
    /// no-op.
    pub fn put(&self, bytes: &[u8]) -> Result<B256, BlobError> {
        let hash = blob_hash(bytes);
        self.write(&hash, bytes)?;
        Ok(hash)
    }

    /// Stores `bytes` received as the blob `expected`, refusing them if they hash to
    /// anything else.
    pub fn put_expecting(&self, expected: &B256, bytes: &[u8]) -> Result<(), BlobError> {
        let found = blob_hash(bytes);
        if found != *expected {
            return Err(BlobError::HashMismatch {
                expected: *expected,
                found,
            });
        }
        self.write(expected, bytes)
    }

    fn write(&self, hash: &B256, bytes: &[u8]) -> Result<(), BlobError> {
        let len = bytes.len() as u64;
        if len > self.max_blob_bytes {
            return Err(BlobError::TooLarge {
                len,
                max: self.max_blob_bytes,
            });
        }
        let path = self.path(hash);
        if path.is_file() {
            return Ok(());
        }
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(
            "{TMP_PREFIX}{}-{}-{n}",
            hex::encode(hash),
            std::process::id()
        ));
        if let Err(e) = write_synced(&tmp, bytes) {
            // Best effort: a leftover temporary file is removed at the next open anyway.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let mut totals = self.lock();
        let existed = path.is_file();
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(io(&path)(e));
        }
        self.sync_dir()?;
        if !existed {
            totals.bytes = totals.bytes.saturating_add(len);
            totals.count += 1;
        }
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), BlobError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }

    /// The blob's bytes, checked against its hash; `None` if it is not stored. A blob whose
    /// bytes no longer match is removed and reported as [`BlobError::Corrupt`].
    pub fn get(&self, hash: &B256) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.path(hash);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let len = file.metadata().map_err(io(&path))?.len();
        if len > self.max_blob_bytes {
            return Err(BlobError::TooLarge {
                len,
                max: self.max_blob_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        // Read at most one byte past the bound, so a file growing under us stays bounded.
        file.take(self.max_blob_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io(&path))?;
        let found = blob_hash(&bytes);
        if found != *hash {
            tracing::warn!(%hash, %found, "removing corrupt blob {}", path.display());
            self.remove(hash)?;
            return Err(BlobError::Corrupt { hash: *hash, found });
        }
        Ok(Some(bytes))
    }

    /// Removes a blob; returns whether it was there.
    pub fn remove(&self, hash: &B256) -> Result<bool, BlobError> {
        let path = self.path(hash);
        let mut totals = self.lock();
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(&path)(e)),
        };
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(&path)(e)),
        }
        self.sync_dir()?;
        totals.bytes = totals.bytes.saturating_sub(len);
        totals.count = totals.count.saturating_sub(1);
        Ok(true)
    }

    /// The hashes of every stored blob, in no particular order.
    pub fn list(&self) -> Result<Vec<B256>, BlobError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            if let Some(h) = entry.file_name().to_str().and_then(parse_name) {
                out.push(h);
            }
        }
        Ok(out)
    }
}
