//! Typed errors of the store: one enum for the database, one for the blob directory.

use std::path::PathBuf;

use sietch_market::{B256, DecodeError};

use super::records::{JobState, Side};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory or its subdirectories could not be created or read.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Another process has the database open (redb takes an exclusive lock on the file).
    #[error(
        "{path} is open in another process; stop the other sietch node or use another data directory"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The file was written by a newer build whose layout this one does not know.
    #[error(
        "{path} has schema version {found}, newer than the version {supported} this build of sietch \
         knows; upgrade sietch, or use another data directory"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The newest version this build knows.
        supported: u64,
    },
    /// The file is a redb database, but not one a sietch node wrote.
    #[error("{path} holds tables {tables:?} but no sietch schema version; refusing to touch it")]
    NotAStore {
        /// The database file.
        path: PathBuf,
        /// The tables found in it.
        tables: Vec<String>,
    },
    /// A migration step refused to run; the file was left at version `from`.
    #[error("migration from schema version {from} ({name}) failed: {reason}")]
    Migration {
        /// The version the step starts from.
        from: u64,
        /// The step's name.
        name: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// redb failed (I/O, corruption detected by redb, or a transaction error).
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
    /// A stored value does not decode: the file was damaged or written by an incompatible build.
    #[error("corrupt {table} entry {key}: {source}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The entry's key, for people.
        key: String,
        /// Why it does not decode.
        source: DecodeError,
    },
    /// A value handed to the store is out of bounds.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The argument.
        what: &'static str,
        /// Why it is refused.
        why: String,
    },
    /// A job with this id is already stored on that side.
    #[error("{side} job {job_id} already exists")]
    JobExists {
        /// Buyer or provider side.
        side: Side,
        /// The job.
        job_id: B256,
    },
    /// No job with this id is stored on that side.
    #[error("no {side} job {job_id}")]
    NoSuchJob {
        /// Buyer or provider side.
        side: Side,
        /// The job.
        job_id: B256,
    },
    /// A job's state may only move forward (see [`JobState::can_become`]).
    #[error("{side} job {job_id} cannot go from {from} to {to}")]
    StateTransition {
        /// Buyer or provider side.
        side: Side,
        /// The job.
        job_id: B256,
        /// Its stored state.
        from: JobState,
        /// The state asked for.
        to: JobState,
    },
    /// A message does not belong to the job or channel it was filed under.
    #[error("{what} is for {found}, not {expected}")]
    Mismatch {
        /// What was compared (job id, spec hash, channel).
        what: &'static str,
        /// The value the store holds.
        expected: B256,
        /// The value in the message.
        found: B256,
    },
    /// An own offer must carry a higher sequence number than any the node has used.
    #[error("offer sequence {sequence} is not above {stored}, the last one this node used")]
    StaleOfferSequence {
        /// The sequence offered.
        sequence: u64,
        /// The last sequence stored.
        stored: u64,
    },
    /// A blob operation failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// Reading or writing the blob directory failed.
    #[error("blob I/O on {}: {source}", path.display())]
    Io {
        /// The file or directory, inside the data directory (`blobs/<hash>`).
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The blob is over the per-blob bound.
    #[error("blob of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: u64,
        /// The bound.
        max: u64,
    },
    /// The bytes do not hash to the hash they were announced under.
    #[error("bytes hash to {found}, not the expected {expected}")]
    HashMismatch {
        /// The hash asked for.
        expected: B256,
        /// The hash of the bytes.
        found: B256,
    },
    /// Storing the blob would go over the blob quota, and not enough blobs are old enough
    /// to evict.
    #[error(
        "no room for a blob of {len} bytes: {used} of the {quota}-byte blob quota are in use by blobs used recently"
    )]
    QuotaFull {
        /// The blob's length.
        len: u64,
        /// Bytes stored now.
        used: u64,
        /// The quota.
        quota: u64,
    },
    /// The stored file no longer hashes to its name; it was removed, fetch the blob again.
    #[error("blob {hash} was corrupt on disk (its bytes hash to {found}); it was removed")]
    Corrupt {
        /// The blob's name.
        hash: B256,
        /// What its bytes hashed to.
        found: B256,
    },
}

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        Self::Database(e.into())
    }
}
impl From<redb::TransactionError> for StoreError {
    fn from(e: redb::TransactionError) -> Self {
        Self::Database(e.into())
    }
}
impl From<redb::TableError> for StoreError {
    fn from(e: redb::TableError) -> Self {
        Self::Database(e.into())
    }
}
impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        Self::Database(e.into())
    }
}
impl From<redb::CommitError> for StoreError {
    fn from(e: redb::CommitError) -> Self {
        Self::Database(e.into())
    }
}
