//! A blob written as it arrives from a peer: into a temporary file of the blob directory
//! (its name is never a hash, so a crash leaves nothing that passes for a blob, and the next
//! open removes it), hashed with blake3 as it goes, and published under its name by
//! [`Blobs::commit`] only when it is whole and hashes to that name. Dropped before that,
//! the temporary file is removed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use sietch_market::B256;

use super::{Blobs, io};
use crate::store::error::BlobError;

/// A blob being written; see the module's documentation.
#[derive(Debug)]
pub struct BlobWriter {
    expected: B256,
    max: u64,
    quota: u64,
    tmp: PathBuf,
    file: Option<File>,
    created: bool,
    total: u64,
    written: u64,
    hasher: blake3::Hasher,
}

impl Blobs {
    /// A writer for the blob `expected`, whose bytes will arrive in order.
    pub fn writer(&self, expected: &B256) -> BlobWriter {
        BlobWriter {
            expected: *expected,
            max: self.limits.max_blob_bytes,
            quota: self.limits.quota_bytes,
            tmp: self.tmp_path(expected),
            file: None,
            created: false,
            total: 0,
            written: 0,
            hasher: blake3::Hasher::new(),
        }
    }

    /// Publishes a whole blob written through `w` under its hash, once it hashes to it:
    /// flushed to disk, room made in the quota (evicting as [`Blobs::put`] does), renamed
    /// into place. Returns its size. A blob that is short or hashes to anything else is
    /// refused, and its temporary file removed.
    pub fn commit(&self, mut w: BlobWriter) -> Result<u64, BlobError> {
        let Some(file) = w.file.take() else {
            return Err(io(&w.tmp)(std::io::Error::other(
                "the blob was never begun",
            )));
        };
        if w.written != w.total {
            return Err(io(&w.tmp)(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} of the blob's {} bytes were written", w.written, w.total),
            )));
        }
        let found = w.hash();
        if found != w.expected {
            return Err(BlobError::HashMismatch {
                expected: w.expected,
                found,
            });
        }
        file.sync_all().map_err(io(&w.tmp))?;
        drop(file);
        let path = self.path(&w.expected);
        if path.is_file() {
            self.touch(&w.expected);
            return Ok(w.total);
        }
        self.make_room(w.total)?;
        // From here the temporary file is the blob's, or removed by `publish`.
        w.created = false;
        self.publish(&w.tmp, &path, w.total)?;
        Ok(w.total)
    }
}

impl BlobWriter {
    /// The blob's size, before any byte: refused over the per-blob bound or the quota; the
    /// temporary file is created (the owner's only).
    pub fn begin(&mut self, total: u64) -> Result<(), BlobError> {
        if total > self.max {
            return Err(BlobError::TooLarge {
                len: total,
                max: self.max,
            });
        }
        if total > self.quota {
            return Err(BlobError::QuotaFull {
                len: total,
                used: 0,
                quota: self.quota,
            });
        }
        if self.file.is_some() {
            return Err(io(&self.tmp)(std::io::Error::other("begun twice")));
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.tmp)
            .map_err(io(&self.tmp))?;
        self.created = true;
        self.file = Some(file);
        self.total = total;
        Ok(())
    }

    /// Appends bytes; refused past the size given to [`BlobWriter::begin`].
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        let len = self.written.saturating_add(bytes.len() as u64);
        if len > self.total {
            return Err(BlobError::TooLarge {
                len,
                max: self.total,
            });
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io(&self.tmp)(std::io::Error::other(
                "the blob was never begun",
            )));
        };
        file.write_all(bytes).map_err(io(&self.tmp))?;
        self.hasher.update(bytes);
        self.written = len;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The blake3 hash of the bytes written so far.
    pub fn hash(&self) -> B256 {
        B256::from(*self.hasher.finalize().as_bytes())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        self.file = None;
        if self.created {
            // Best effort: a leftover temporary file is removed at the next open anyway.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl crate::net::BlobSink for BlobWriter {
    fn begin(&mut self, total: u64) -> std::io::Result<()> {
        BlobWriter::begin(self, total).map_err(std::io::Error::other)
    }
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        BlobWriter::write(self, bytes).map_err(std::io::Error::other)
    }
    fn written(&self) -> u64 {
        self.written
    }
    fn hash(&self) -> B256 {
        BlobWriter::hash(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::blobs::{BlobLimits, blob_hash};

    fn tmp_files(b: &Blobs) -> usize {
        fs::read_dir(b.dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(super::super::TMP_PREFIX)
            })
            .count()
    }

    #[test]
    fn a_whole_blob_is_published_and_a_wrong_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path().join("blobs"), 1 << 20).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let hash = blob_hash(&data);

        let mut w = blobs.writer(&hash);
        w.begin(data.len() as u64).unwrap();
        for part in data.chunks(70_000) {
            w.write(part).unwrap();
        }
        assert!(w.write(&[0]).is_err(), "nothing past the announced size");
        assert_eq!(w.hash(), hash);
        assert_eq!(blobs.commit(w).unwrap(), data.len() as u64);
        assert_eq!(blobs.get(&hash).unwrap().unwrap(), data);
        assert_eq!(blobs.total(), (data.len() as u64, 1));
        assert_eq!(tmp_files(&blobs), 0);

        let other = B256::repeat_byte(7);
        let mut w = blobs.writer(&other);
        w.begin(4).unwrap();
        w.write(b"abcd").unwrap();
        assert!(matches!(
            blobs.commit(w),
            Err(BlobError::HashMismatch { .. })
        ));
        assert!(!blobs.has(&other));
        assert_eq!(tmp_files(&blobs), 0, "the refused bytes are gone");

        let mut w = blobs.writer(&other);
        w.begin(4).unwrap();
        w.write(b"ab").unwrap();
        assert!(blobs.commit(w).is_err(), "short");
        let mut w = blobs.writer(&other);
        w.begin(4).unwrap();
        drop(w);
        assert_eq!(tmp_files(&blobs), 0, "dropped before the end");
        assert_eq!(blobs.total(), (data.len() as u64, 1));
    }

    #[test]
    fn sizes_over_the_bounds_are_refused_before_a_file_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open_with(
            dir.path().join("blobs"),
            BlobLimits {
                max_blob_bytes: 1000,
                quota_bytes: 500,
                keep_secs: 0,
            },
        )
        .unwrap();
        let mut w = blobs.writer(&B256::ZERO);
        assert!(matches!(w.begin(1001), Err(BlobError::TooLarge { .. })));
        assert!(matches!(w.begin(501), Err(BlobError::QuotaFull { .. })));
        assert_eq!(tmp_files(&blobs), 0);
    }
}
