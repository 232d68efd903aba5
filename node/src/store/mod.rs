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
//! and `finish_job` (a buyer's job delivered and paid at once). Those job writes also go
//! through group commit (the `batch` module): writes that arrive while another is committing share
//! the next transaction and its one fsync, with the outcome each would have had alone
//! ([`Store::group_commits`] counts them). The
//! API is blocking: async callers use `tokio::task::spawn_blocking`. [`Store`] is cheap to
//! clone and safe to share between threads; only one process may open a data directory.

mod batch;
mod blobs;
mod error;
mod jobs;
pub mod records;
pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable};
use sietch_market::{Address, B256, Offer, PublicKey, Signed, Voucher};

pub use batch::GroupCommits;
pub use blobs::{
    BlobLimits, Blobs, DEFAULT_BLOB_KEEP_SECS, DEFAULT_BLOB_QUOTA_BYTES, DEFAULT_MAX_BLOB_BYTES,
    blob_hash,
};
pub use error::{BlobError, StoreError};
pub use records::{
    DisputableTicket, EvmSigned, JobRecord, JobState, MAX_NOTE, NodeKeys, OwnOffer, Reputation,
    Side, VoucherUpdate,
};
pub use schema::{Migration, SCHEMA_VERSION, Schema};

use records::Record;
use schema::{
    CHAIN_CURSOR, CONFIG, DISPUTABLE, JOB_OUTPUTS, NODE_KEYS, OWN_OFFERS, PROVIDER_KEYS,
    PROVIDER_REPUTATION, VOUCHERS,
};

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

/// Key of the node's keys in the `node_keys` table.
const NODE_KEY: &str = "node";

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

    // ---- node keys ----

    /// The node's keys, if they were ever stored.
    pub fn node_keys(&self) -> Result<Option<NodeKeys>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(NODE_KEYS)?;
        table
            .get(NODE_KEY)?
            .map(|v| decode(NODE_KEYS_NAME, NODE_KEY, v.value()))
            .transpose()
    }

    /// Stores `keys` unless the node already has keys, and returns the keys the node has
    /// now. A node's identity is created once: this never replaces it (see
    /// [`Store::replace_node_keys`]).
    pub fn init_node_keys(&self, keys: &NodeKeys) -> Result<NodeKeys, StoreError> {
        let tx = self.db().begin_write()?;
        let kept = {
            let mut table = tx.open_table(NODE_KEYS)?;
            let existing = table
                .get(NODE_KEY)?
                .map(|v| decode::<NodeKeys>(NODE_KEYS_NAME, NODE_KEY, v.value()))
                .transpose()?;
            match existing {
                Some(k) => k,
                None => {
                    table.insert(NODE_KEY, keys.to_bytes().as_slice())?;
                    keys.clone()
                }
            }
        };
        tx.commit()?;
        Ok(kept)
    }

    /// Replaces the node's keys (key rotation). Offers and registrations signed with the old
    /// keys become the caller's problem.
    pub fn replace_node_keys(&self, keys: &NodeKeys) -> Result<(), StoreError> {
        let tx = self.db().begin_write()?;
        tx.open_table(NODE_KEYS)?
            .insert(NODE_KEY, keys.to_bytes().as_slice())?;
        tx.commit()?;
        Ok(())
    }

    // ---- config ----

    /// A config value.
    pub fn config(&self, key: &str) -> Result<Option<String>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(CONFIG)?;
        Ok(table.get(key)?.map(|v| v.value().to_owned()))
    }

    /// Sets a config value.
    pub fn set_config(&self, key: &str, value: &str) -> Result<(), StoreError> {
        check_len("config key", key.len(), MAX_CONFIG_KEY)?;
        check_len("config value", value.len(), MAX_CONFIG_VALUE)?;
        let tx = self.db().begin_write()?;
        tx.open_table(CONFIG)?.insert(key, value)?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a config value; returns whether it was there.
    pub fn remove_config(&self, key: &str) -> Result<bool, StoreError> {
        let tx = self.db().begin_write()?;
        let was = tx.open_table(CONFIG)?.remove(key)?.is_some();
        tx.commit()?;
        Ok(was)
    }

    /// Every config entry, in key order.
    pub fn config_entries(&self) -> Result<Vec<(String, String)>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(CONFIG)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_owned(), v.value().to_owned()));
        }
        Ok(out)
    }

    // ---- own offers ----

    /// This node's offer and last sequence number for one of its keys.
    pub fn own_offer(&self, provider: &PublicKey) -> Result<Option<OwnOffer>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(OWN_OFFERS)?;
        table
            .get(&provider.0)?
            .map(|v| decode(OWN_OFFERS_NAME, provider, v.value()))
            .transpose()
    }

    /// Every own offer, by key.
    pub fn own_offers(&self) -> Result<Vec<(PublicKey, OwnOffer)>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(OWN_OFFERS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let key = PublicKey(*k.value());
            out.push((key, decode(OWN_OFFERS_NAME, key, v.value())?));
        }
        Ok(out)
    }

    /// Records a newly signed offer as the node's latest. Its sequence must be above every
    /// sequence this key used before ([`StoreError::StaleOfferSequence`]), so a node never
    /// gossips an offer that peers would drop as old.
    pub fn put_own_offer(&self, offer: &Signed<Offer>) -> Result<(), StoreError> {
        let key = offer.payload.provider;
        let sequence = offer.payload.sequence;
        self.update_own_offer(&key, sequence, Some(offer.clone()))
    }

    /// Records that the offer of `provider` was withdrawn with `sequence`: the offer is
    /// dropped, the sequence kept.
    pub fn withdraw_own_offer(
        &self,
        provider: &PublicKey,
        sequence: u64,
    ) -> Result<(), StoreError> {
        self.update_own_offer(provider, sequence, None)
    }

    fn update_own_offer(
        &self,
        key: &PublicKey,
        sequence: u64,
        offer: Option<Signed<Offer>>,
    ) -> Result<(), StoreError> {
        let record = OwnOffer { sequence, offer };
        let bytes = record.to_bytes();
        // Refuse what a read would refuse, so the table never holds an unreadable row.
        check_len("own offer", bytes.len(), OwnOffer::MAX_SIZE)?;
        let tx = self.db().begin_write()?;
        {
            let mut table = tx.open_table(OWN_OFFERS)?;
            if let Some(v) = table.get(&key.0)? {
                let stored: OwnOffer = decode(OWN_OFFERS_NAME, key, v.value())?;
                if sequence <= stored.sequence {
                    return Err(StoreError::StaleOfferSequence {
                        sequence,
                        stored: stored.sequence,
                    });
                }
            }
            table.insert(&key.0, bytes.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    // ---- job outputs ----

    /// Keeps a job's outputs (the result message's bytes, at most 16 MiB).
    pub fn put_job_outputs(&self, job_id: &B256, bytes: &[u8]) -> Result<(), StoreError> {
        let tx = self.bookkeeping()?;
        tx.open_table(JOB_OUTPUTS)?.insert(&job_id.0, bytes)?;
        tx.commit()?;
        Ok(())
    }

    /// A job's outputs, if kept.
    pub fn job_outputs(&self, job_id: &B256) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(JOB_OUTPUTS)?;
        Ok(table.get(&job_id.0)?.map(|v| v.value().to_vec()))
    }

    // ---- vouchers ----

    /// The latest voucher of a channel.
    pub fn voucher(&self, channel_id: &B256) -> Result<Option<EvmSigned<Voucher>>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(VOUCHERS)?;
        table
            .get(&channel_id.0)?
            .map(|v| decode(VOUCHERS_NAME, channel_id, v.value()))
            .transpose()
    }

    /// The latest voucher of every channel.
    pub fn vouchers(&self) -> Result<Vec<EvmSigned<Voucher>>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(VOUCHERS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push(decode(VOUCHERS_NAME, B256::from(*k.value()), v.value())?);
        }
        Ok(out)
    }

    /// Keeps `voucher` as its channel's latest if its cumulative amount is higher than the
    /// stored one's. An older or equal voucher (a late or replayed message) never replaces
    /// a newer one: it is answered with [`VoucherUpdate::Kept`] and the stored voucher.
    pub fn put_voucher(&self, voucher: &EvmSigned<Voucher>) -> Result<VoucherUpdate, StoreError> {
        let tx = self.db().begin_write()?;
        let update = {
            let mut table = tx.open_table(VOUCHERS)?;
            upsert_voucher(&mut table, voucher)?
        };
        tx.commit()?;
        Ok(update)
    }

    // ---- chain cursor ----

    /// The last block of `chain_id` the node has indexed.
    pub fn chain_cursor(&self, chain_id: u64) -> Result<Option<u64>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(CHAIN_CURSOR)?;
        Ok(table.get(chain_id)?.map(|v| v.value()))
    }

    /// Records the last block of `chain_id` indexed. It may move back (a reorg).
    pub fn set_chain_cursor(&self, chain_id: u64, block: u64) -> Result<(), StoreError> {
        let tx = self.db().begin_write()?;
        tx.open_table(CHAIN_CURSOR)?.insert(chain_id, block)?;
        tx.commit()?;
        Ok(())
    }

    // ---- reputation ----

    /// What this node has counted of a provider, by its node key (all zero if nothing).
    pub fn reputation(&self, provider: &PublicKey) -> Result<Reputation, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(PROVIDER_REPUTATION)?;
        Ok(table
            .get(&provider.0)?
            .map(|v| decode(REPUTATION_NAME, provider, v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Every provider this node has counted something of, by node key.
    pub fn reputations(&self) -> Result<Vec<(PublicKey, Reputation)>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(PROVIDER_REPUTATION)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let key = PublicKey(*k.value());
            out.push((key, decode(REPUTATION_NAME, key, v.value())?));
        }
        Ok(out)
    }

    /// Keeps the counters of providers as the buyer's reputation table has them now. Counters
    /// only grow, so each stored counter becomes the greater of the stored and the given one:
    /// two writes that land out of order keep the later counts. Bookkeeping: durable with
    /// the next durable commit.
    pub fn put_reputations(&self, rows: &[(PublicKey, Reputation)]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.bookkeeping()?;
        {
            let mut table = tx.open_table(PROVIDER_REPUTATION)?;
            for (key, rep) in rows {
                let stored: Reputation = match table.get(&key.0)? {
                    Some(v) => decode(REPUTATION_NAME, key, v.value())?,
                    None => Reputation::default(),
                };
                let merged = Reputation {
                    settled_jobs: stored.settled_jobs.max(rep.settled_jobs),
                    checks_passed: stored.checks_passed.max(rep.checks_passed),
                    checks_failed: stored.checks_failed.max(rep.checks_failed),
                    slashes: stored.slashes.max(rep.slashes),
                    disputes: stored.disputes.max(rep.disputes),
                };
                table.insert(&key.0, merged.to_bytes().as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The node key each account registered with a proof, as the reputation table files
    /// the chain's events.
    pub fn provider_keys(&self) -> Result<Vec<(Address, PublicKey)>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(PROVIDER_KEYS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((Address::from(*k.value()), PublicKey(*v.value())));
        }
        Ok(out)
    }

    /// Records that `account` registered `key` (replacing an earlier key: a rotation).
    /// Bookkeeping: durable with the next durable commit.
    pub fn put_provider_key(&self, account: &Address, key: &PublicKey) -> Result<(), StoreError> {
        let tx = self.bookkeeping()?;
        tx.open_table(PROVIDER_KEYS)?.insert(&account.0.0, &key.0)?;
        tx.commit()?;
        Ok(())
    }

    // ---- tickets to dispute ----

    /// Keeps a ticket to dispute if its provider claims it (durably: it is the buyer's claim
    /// to its money).
    pub fn put_disputable(
        &self,
        ticket: &B256,
        record: &DisputableTicket,
    ) -> Result<(), StoreError> {
        let tx = self.db().begin_write()?;
        tx.open_table(DISPUTABLE)?
            .insert(&ticket.0, record.to_bytes().as_slice())?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets a ticket to dispute (it settled); whether it was kept.
    pub fn remove_disputable(&self, ticket: &B256) -> Result<bool, StoreError> {
        let tx = self.db().begin_write()?;
        let was = tx.open_table(DISPUTABLE)?.remove(&ticket.0)?.is_some();
        tx.commit()?;
        Ok(was)
    }

    /// Up to `limit` tickets to dispute, in ticket-id order.
    pub fn disputable(&self, limit: usize) -> Result<Vec<(B256, DisputableTicket)>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(DISPUTABLE)?;
        let mut out = Vec::new();
        for entry in table.iter()?.take(limit) {
            let (k, v) = entry?;
            let ticket = B256::from(*k.value());
            out.push((ticket, decode(DISPUTABLE_NAME, ticket, v.value())?));
        }
        Ok(out)
    }
}

const NODE_KEYS_NAME: &str = "node_keys";
const OWN_OFFERS_NAME: &str = "own_offers";
const VOUCHERS_NAME: &str = "vouchers";
const REPUTATION_NAME: &str = "provider_reputation";
const DISPUTABLE_NAME: &str = "disputable_tickets";

fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), StoreError> {
    if len > max {
        return Err(StoreError::Invalid {
            what,
            why: format!("{len} bytes, over the limit of {max}"),
        });
    }
    Ok(())
}

/// The voucher rule inside a caller's transaction.
pub(crate) fn upsert_voucher(
    table: &mut redb::Table<'_, &'static [u8; 32], &'static [u8]>,
    voucher: &EvmSigned<Voucher>,
) -> Result<VoucherUpdate, StoreError> {
    let channel = voucher.message.channel_id;
    if let Some(v) = table.get(&channel.0)? {
        let stored: EvmSigned<Voucher> = decode(VOUCHERS_NAME, channel, v.value())?;
        if stored.message.cumulative_amount >= voucher.message.cumulative_amount {
            return Ok(VoucherUpdate::Kept(stored));
        }
    }
    table.insert(&channel.0, voucher.to_bytes().as_slice())?;
    Ok(VoucherUpdate::Stored)
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
