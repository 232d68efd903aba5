//! Content-addressed blobs (modules, inputs, outputs) in `blobs/<blake3 hex>`.
//!
//! A blob becomes visible under its hash only whole: it is written to a temporary file in the
//! same directory, flushed to disk, renamed over its final name (atomic on POSIX) and the
//! directory is flushed so the rename itself survives a crash. A temporary file left by a
//! crash is never mistaken for a blob (its name is not a hash) and is removed at the next
//! open. Reads hash the bytes again: disks and people damage files, and a blob that no
//! longer matches its name is removed and reported instead of being handed to the sandbox.
//!
//! The directory has a quota ([`BlobLimits::quota_bytes`]). A write that would go over it
//! first evicts the least recently used blobs that have not been used (stored, read or
//! served) for [`BlobLimits::keep_secs`]; if that does not make room, it is refused with
//! [`BlobError::QuotaFull`]. A buyer's uploads in use by its jobs and a provider's cached
//! modules stay; what nobody asked for in a while goes. The directory is the owner's only
//! (0700, files 0600), and errors name a blob by its place in the data directory
//! (`blobs/<hash>`), never by an absolute path.
//!
//! A blob fetched from a peer is written as it arrives through a [`BlobWriter`]
//! (`writer.rs`): into a temporary file, hashed as it goes, and published under its name by
//! [`Blobs::commit`] only when it is whole and hashes to that name.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sietch_market::B256;

use super::error::BlobError;

mod writer;

pub use writer::BlobWriter;

/// Prefix of temporary files; never a valid hash name.
const TMP_PREFIX: &str = ".tmp-";

/// The default bound on one blob: 256 MiB, enough for large modules and inputs, and small
/// enough to hold in memory while it is hashed and sent.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 256 << 20;

/// The default quota on all blobs together: 16 GiB.
pub const DEFAULT_BLOB_QUOTA_BYTES: u64 = 16 << 30;

/// The default time a used blob is safe from eviction: one day.
pub const DEFAULT_BLOB_KEEP_SECS: u64 = 24 * 3600;

/// Bounds on the blob directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLimits {
    /// The bound on one blob, in bytes.
    pub max_blob_bytes: u64,
    /// The bound on all blobs together, in bytes.
    pub quota_bytes: u64,
    /// A blob used (stored, read or served) this recently is never evicted.
    pub keep_secs: u64,
}

impl Default for BlobLimits {
    fn default() -> Self {
        Self {
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            quota_bytes: DEFAULT_BLOB_QUOTA_BYTES,
            keep_secs: DEFAULT_BLOB_KEEP_SECS,
        }
    }
}

/// The blob directory. Cheap to share behind the [`super::Store`]; safe to use from several
/// threads.
#[derive(Debug)]
pub struct Blobs {
    dir: PathBuf,
    limits: BlobLimits,
    /// Serialises the publish/remove step with the size figure.
    totals: Mutex<Totals>,
    tmp_counter: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    bytes: u64,
    count: u64,
}

/// An I/O error on `path`, named by its place in the data directory (`blobs/<name>`): an
/// error may reach a client, which has no business knowing where the data directory is.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| {
        let mut rel = PathBuf::from(super::BLOBS_DIR);
        if let Some(name) = path.file_name().filter(|n| *n != super::BLOBS_DIR) {
            rel.push(name);
        }
        BlobError::Io { path: rel, source }
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

/// Writes a new file, readable by its owner only, and flushes it to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BlobError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// The blake3 hash of `bytes` as a [`B256`].
pub fn blob_hash(bytes: &[u8]) -> B256 {
    B256::from(*blake3::hash(bytes).as_bytes())
}

impl Blobs {
    /// Opens (creating it if needed) the blob directory `dir` with the default quota.
    pub fn open(dir: impl Into<PathBuf>, max_blob_bytes: u64) -> Result<Self, BlobError> {
        Self::open_with(
            dir,
            BlobLimits {
                max_blob_bytes,
                ..BlobLimits::default()
            },
        )
    }

    /// Opens (creating it if needed) the blob directory `dir`, makes it and its files the
    /// owner's only, removes temporary files left by a crash and adds up the sizes of the
    /// blobs in it.
    pub fn open_with(dir: impl Into<PathBuf>, limits: BlobLimits) -> Result<Self, BlobError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        owner_only(&dir, 0o700)?;
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
                if meta.permissions().mode() & 0o077 != 0 {
                    owner_only(&entry.path(), 0o600)?;
                }
                totals.bytes = totals.bytes.saturating_add(meta.len());
                totals.count += 1;
            }
        }
        Ok(Self {
            dir,
            limits,
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
        self.limits.max_blob_bytes
    }

    /// The directory's bounds.
    pub fn limits(&self) -> BlobLimits {
        self.limits
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
        if len > self.limits.max_blob_bytes {
            return Err(BlobError::TooLarge {
                len,
                max: self.limits.max_blob_bytes,
            });
        }
        let path = self.path(hash);
        if path.is_file() {
            self.touch(hash);
            return Ok(());
        }
        self.make_room(len)?;
        let tmp = self.tmp_path(hash);
        if let Err(e) = write_synced(&tmp, bytes) {
            // Best effort: a leftover temporary file is removed at the next open anyway.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.publish(&tmp, &path, len)
    }

    /// A name for a temporary file of the blob `hash`, unique in this process.
    fn tmp_path(&self, hash: &B256) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!(
            "{TMP_PREFIX}{}-{}-{n}",
            hex::encode(hash),
            std::process::id()
        ))
    }

    /// Renames a whole, flushed temporary file over the blob's name and counts it.
    fn publish(&self, tmp: &Path, path: &Path, len: u64) -> Result<(), BlobError> {
        let mut totals = self.lock();
        let existed = path.is_file();
        if let Err(e) = fs::rename(tmp, path) {
            let _ = fs::remove_file(tmp);
            return Err(io(path)(e));
        }
        self.sync_dir()?;
        if !existed {
            totals.bytes = totals.bytes.saturating_add(len);
            totals.count += 1;
        }
        Ok(())
    }

    /// Evicts least recently used blobs, none used within `keep_secs`, until `len` more bytes
    /// fit in the quota; refuses with [`BlobError::QuotaFull`] when they cannot.
    fn make_room(&self, len: u64) -> Result<(), BlobError> {
        let quota = self.limits.quota_bytes;
        let over = |total: u64| total.saturating_add(len) > quota;
        if !over(self.total_bytes()) {
            return Ok(());
        }
        if len > quota {
            return Err(BlobError::QuotaFull {
                len,
                used: self.total_bytes(),
                quota,
            });
        }
        let keep = Duration::from_secs(self.limits.keep_secs);
        let now = SystemTime::now();
        let mut old: Vec<(SystemTime, B256)> = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let Some(hash) = entry.file_name().to_str().and_then(parse_name) else {
                continue;
            };
            let Ok(used) = entry.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            if now.duration_since(used).unwrap_or_default() >= keep {
                old.push((used, hash));
            }
        }
        old.sort();
        for (_, hash) in old {
            if !over(self.total_bytes()) {
                break;
            }
            if self.remove(&hash)? {
                tracing::info!(%hash, "evicted an unused blob to stay within the blob quota");
            }
        }
        let used = self.total_bytes();
        if over(used) {
            return Err(BlobError::QuotaFull { len, used, quota });
        }
        Ok(())
    }

    /// Marks a blob as used now (its modification time: blobs are immutable, so the time
    /// is free to mean "last used"), which keeps it from eviction for `keep_secs`.
    pub fn touch(&self, hash: &B256) {
        let path = self.path(hash);
        if let Ok(f) = File::options().write(true).open(&path) {
            // Best effort: a blob whose time cannot be set is only evicted sooner.
            let _ = f.set_modified(SystemTime::now());
        }
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
        if len > self.limits.max_blob_bytes {
            return Err(BlobError::TooLarge {
                len,
                max: self.limits.max_blob_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        // Read at most one byte past the bound, so a file growing under us stays bounded.
        file.take(self.limits.max_blob_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io(&path))?;
        let found = blob_hash(&bytes);
        if found != *hash {
            tracing::warn!(%hash, %found, "removing corrupt blob {}", path.display());
            self.remove(hash)?;
            return Err(BlobError::Corrupt { hash: *hash, found });
        }
        self.touch(hash);
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

    /// One stored blob's size and when it was last used, if it is stored.
    pub fn entry(&self, hash: &B256) -> Option<BlobEntry> {
        let meta = fs::metadata(self.path(hash)).ok()?;
        meta.is_file().then(|| BlobEntry {
            hash: *hash,
            bytes: meta.len(),
            last_used: unix_secs(meta.modified().ok()),
        })
    }

    /// The stored blobs, most recently used first, at most `limit` (a cache's contents, as
    /// `sietch node blobs` and `GET /api/v1/blobs` show them).
    pub fn entries(&self, limit: usize) -> Result<Vec<BlobEntry>, BlobError> {
        let mut out: Vec<BlobEntry> = self.list()?.iter().filter_map(|h| self.entry(h)).collect();
        out.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.hash.cmp(&b.hash)));
        out.truncate(limit);
        Ok(out)
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

/// A stored blob, as a listing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobEntry {
    /// Its hash.
    pub hash: B256,
    /// Its size.
    pub bytes: u64,
    /// When it was last stored, read or served, unix seconds (0 if unknown).
    pub last_used: u64,
}

fn unix_secs(t: Option<SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Sets `path`'s permission bits to `mode` (the owner's only).
fn owner_only(path: &Path, mode: u32) -> Result<(), BlobError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))
}
