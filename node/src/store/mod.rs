//! The node's durable state (`docs/protocol.md` §7): what a node must still know after it is
//! killed at any instant.
//!
//! # What is stored where
//!
//! Everything lives in the node's data directory:
//!
//! | path | what | why there |
//! | --- | --- | --- |
//! | `state.redb` | keys, config, own offers, jobs of both sides with their specs, tickets, results and states, the latest voucher per channel, the chain cursor, reputation, tickets to dispute | small records that change together; redb gives ACID transactions, so a multi-part update (a job paid, its voucher and its outputs) is all there or not at all after a crash |
//! | `blobs/<blake3 hex>` | modules, inputs and outputs, by content | large and immutable: content addressing deduplicates them and lets a peer ask for a blob by hash; plain files keep them out of the database's pages |
//! | `modules/` | modules compiled by the sandbox ([`Store::modules_dir`]) | a cache the sandbox owns: it is keyed by module hash and engine, and can be deleted at any time |
//!
//! The tables of `state.redb` (version 3; see [`schema`] for migrations):
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `schema` | `"version"` | schema version (`u64`) |
//! | `node_keys` | `"node"` | [`NodeKeys`]: ed25519 secret key, EVM secret key |
//! | `config` | key (UTF-8) | value (UTF-8) |
//! | `own_offers` | ed25519 public key | [`OwnOffer`]: last sequence used, latest `Signed<Offer>` |
//! | `job_specs` | spec hash | canonical `JobSpec` |
//! | `buyer_jobs`, `provider_jobs` | job id | [`JobRecord`]: state, signed ticket, signed result, check secret |
//! | `vouchers` | channel id | latest [`EvmSigned<Voucher>`] |
//! | `chain_cursor` | chain id | last block indexed |
//! | `job_outputs` (version 2) | job id | the job's outputs (the result message's bytes) |
//! | `provider_reputation` (version 3) | provider ed25519 key | [`Reputation`]: the buyer's reputation table's counters |
//! | `provider_keys` (version 3) | provider EVM address | the ed25519 key it registered with a proof |
//! | `disputable_tickets` (version 3) | ticket id | [`DisputableTicket`]: job, channel, undelivered |
//!
//! Protocol messages are stored in the market crate's canonical encoding, the very bytes that
//! were signed; the store's own records use a versioned encoding over the same primitives
//! ([`records`]). `state.redb` holds secret keys, so it is created readable by its owner only.
//!
//! Every method is one redb transaction, committed durably (fsync) before it returns, but
//! for the bookkeeping of a job in flight (`insert_job`, `record_delivery`,
//! `set_job_state`, `record_check`, `put_job_outputs`): those commit without an fsync and
//! become durable with the next durable commit — the job's result or its payment, which
//! must not be lost, or [`Store::sync`] — so that a job costs one fsync on each side, not
//! six. A crash loses the last of those, never half of one. A provider's payment that came
//! with the next job is written in that job's own commit (`insert_job_paying`). A job that needs no more than one
//! commit has one: `insert_ended_job` (a provider's job that ran at once, with its result)
//! and `finish_job` (a buyer's job delivered and paid at once; `pay_job`, what the buyer uses,
//! also keeps the check secret its payment reveals). Those job writes also go
//! through group commit (the `batch` module): writes that arrive while another is committing share
//! the next transaction and its one fsync, with the outcome each would have had alone
//! ([`Store::group_commits`] counts them). The
//! API is blocking: async callers use `tokio::task::spawn_blocking`. [`Store`] is cheap to
//! clone and safe to share between threads; only one process may open a data directory.

mod batch;
mod blobs;
mod chain;
mod error;
mod jobs;
mod own;
pub mod pending_txs;
pub mod records;
mod reputation;
pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::Database;

pub use batch::GroupCommits;
pub use blobs::{
    BlobEntry, BlobLimits, BlobWriter, Blobs, DEFAULT_BLOB_KEEP_SECS, DEFAULT_BLOB_QUOTA_BYTES,
    DEFAULT_MAX_BLOB_BYTES, blob_hash,
};
pub use error::{BlobError, StoreError};
pub use jobs::Delivery;
pub use records::{
    DisputableTicket, EvmSigned, JobRecord, JobState, MAX_NOTE, NodeKeys, OwnOffer, Reputation,
    Side, VoucherUpdate,
};
pub use schema::{Migration, SCHEMA_VERSION, Schema};

use records::Record;

/// Runs `f` with the store on tokio's blocking pool and waits for it. Every write takes
/// redb's one write lock, which a durable commit holds through its fsync: an async thread
/// waiting for it would stall every task on that thread. `None` if `f` panicked.
pub async fn off_async<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> T + Send + 'static,
) -> Option<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store)).await.ok()
}

/// The database's file name in the data directory.
pub const DB_FILE: &str = "state.redb";
/// The blob directory's name in the data directory.
pub const BLOBS_DIR: &str = "blobs";
/// The compiled-module cache directory's name in the data directory.
pub const MODULES_DIR: &str = "modules";

/// Longest config key, in bytes.
pub const MAX_CONFIG_KEY: usize = 256;
/// Longest config value, in bytes.
pub const MAX_CONFIG_VALUE: usize = 64 * 1024;

/// How to open a store. `StoreOptions::default()` is what a node uses.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    blobs: BlobLimits,
    schema: Schema,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            blobs: BlobLimits::default(),
            schema: Schema::current(),
        }
    }
}

impl StoreOptions {
    /// The bound on one blob, in bytes.
    #[must_use]
    pub fn max_blob_bytes(mut self, max: u64) -> Self {
        self.blobs.max_blob_bytes = max;
        self
    }

    /// The quota on all blobs together, and how long a used blob is safe from eviction.
    #[must_use]
    pub fn blob_quota(mut self, quota_bytes: u64, keep_secs: u64) -> Self {
        self.blobs.quota_bytes = quota_bytes;
        self.blobs.keep_secs = keep_secs;
        self
    }

    /// The layout to bring the file to (tests of migrations; a node uses the current one).
    #[must_use]
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = schema;
        self
    }
}

/// The node's durable state: `state.redb` and the blob directory. See the module docs.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    db: Database,
    blobs: Blobs,
    /// The schema version the file had when it was opened, before migrations.
    opened_at_version: u64,
    /// Group commit of the job writes ([`batch`]).
    batcher: batch::Batcher,
}

fn dir_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn corrupt(
    table: &'static str,
    key: impl std::fmt::Display,
) -> impl FnOnce(sietch_market::DecodeError) -> StoreError {
    let key = key.to_string();
    move |source| StoreError::Corrupt { table, key, source }
}

fn decode<R: Record>(
    table: &'static str,
    key: impl std::fmt::Display,
    bytes: &[u8],
) -> Result<R, StoreError> {
    R::from_bytes(bytes).map_err(corrupt(table, key))
}

impl Store {
    /// Opens the store in `data_dir` (created if missing), bringing `state.redb` to this
    /// build's schema.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(data_dir, StoreOptions::default())
    }

    /// Opens the store with explicit options.
    pub fn open_with(
        data_dir: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let dir = data_dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(dir_err(&dir))?;
        let path = dir.join(DB_FILE);
        create_owner_only(&path)?;
        // A file damaged outside redb could make a plain open panic; the check turns that into
        // an error, at the cost of reading the (small) file once per start.
        let db = redb::Builder::new()
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::Locked { path: path.clone() }
                }
                e => StoreError::from(e),
            })?;
        let opened_at_version = schema::migrate(&db, &path, &options.schema)?;
        let blobs = Blobs::open_with(dir.join(BLOBS_DIR), options.blobs)?;
        tracing::debug!(dir = %dir.display(), version = options.schema.version(), "store open");
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                db,
                blobs,
                opened_at_version,
                batcher: batch::Batcher::default(),
            }),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The schema version the file had before this open migrated it (0 for a new file).
    pub fn opened_at_version(&self) -> u64 {
        self.inner.opened_at_version
    }

    /// The blob directory.
    pub fn blobs(&self) -> &Blobs {
        &self.inner.blobs
    }

    /// The directory for the sandbox's compiled-module cache (`sietch_sandbox`'s disk cache
    /// creates and manages it).
    pub fn modules_dir(&self) -> PathBuf {
        self.inner.dir.join(MODULES_DIR)
    }

    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    /// A write transaction for a job's bookkeeping in flight: committed without waiting for
    /// the disk. The next durable commit (a result, a payment) makes it durable with
    /// everything before it; a crash before that loses it, never half of it.
    pub(crate) fn bookkeeping(&self) -> Result<redb::WriteTransaction, StoreError> {
        let mut tx = self.db().begin_write()?;
        tx.set_durability(redb::Durability::None)
            .map_err(|e| StoreError::Invalid {
                what: "transaction durability",
                why: e.to_string(),
            })?;
        Ok(tx)
    }
}

/// Refuses a value over its limit, before it is written.
fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), StoreError> {
    if len > max {
        return Err(StoreError::Invalid {
            what,
            why: format!("{len} bytes, over the limit of {max}"),
        });
    }
    Ok(())
}

/// Creates the database file, if it is missing, readable and writable by its owner only: it
/// holds secret keys. redb initialises an empty file as a new database.
fn create_owner_only(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(dir_err(path)(e)),
    }
}
