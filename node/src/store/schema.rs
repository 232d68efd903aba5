//! The tables of `state.redb`, the schema version and the migrations between versions.
//!
//! The version lives in the `schema` table under the key `version`. Version 0 is a file
//! with no tables at all (a file just created); each [`Migration`] takes the file from its
//! position in [`Schema`] to the next version in one write transaction that also records the
//! new version, so a crash during an upgrade leaves the file at a version it really has. A
//! file whose version is newer than the binary's is refused ([`StoreError::SchemaTooNew`])
//! rather than read with the wrong layout.

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition, TableHandle};

use super::error::StoreError;

/// Key of the schema version in [`SCHEMA_TABLE`].
const VERSION_KEY: &str = "version";

/// `"version"` → the schema version of the file.
pub(crate) const SCHEMA_TABLE: TableDefinition<'_, &str, u64> = TableDefinition::new("schema");
/// `"node"` → [`super::NodeKeys`] (ed25519 secret, EVM secret).
pub(crate) const NODE_KEYS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("node_keys");
/// Config key → value, both UTF-8.
pub(crate) const CONFIG: TableDefinition<'_, &str, &str> = TableDefinition::new("config");
/// ed25519 public key → [`super::OwnOffer`] (the signed offer in canonical encoding).
pub(crate) const OWN_OFFERS: TableDefinition<'_, &[u8; 32], &[u8]> =
    TableDefinition::new("own_offers");
/// Spec hash → canonical `JobSpec`, shared by the jobs of both sides.
pub(crate) const JOB_SPECS: TableDefinition<'_, &[u8; 32], &[u8]> =
    TableDefinition::new("job_specs");
/// Job id → [`super::JobRecord`] for jobs this node bought.
pub(crate) const BUYER_JOBS: TableDefinition<'_, &[u8; 32], &[u8]> =
    TableDefinition::new("buyer_jobs");
/// Job id → [`super::JobRecord`] for jobs this node ran.
pub(crate) const PROVIDER_JOBS: TableDefinition<'_, &[u8; 32], &[u8]> =
    TableDefinition::new("provider_jobs");
/// Channel id → the latest signed voucher (canonical voucher and EIP-712 signature).
pub(crate) const VOUCHERS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("vouchers");
/// Chain id → last block indexed.
pub(crate) const CHAIN_CURSOR: TableDefinition<'_, u64, u64> = TableDefinition::new("chain_cursor");
/// Provider EVM address → reputation counted by the store's own rule. Version 1 and 2
/// only: written, never read; version 3 replaces it with [`PROVIDER_REPUTATION`].
const OLD_REPUTATION: TableDefinition<'_, &[u8; 20], &[u8]> = TableDefinition::new("reputation");

/// Job id → the job's outputs (the result message's bytes). Version 2.
pub(crate) const JOB_OUTPUTS: TableDefinition<'_, &[u8; 32], &[u8]> =
    TableDefinition::new("job_outputs");

/// Provider ed25519 key → [`super::Reputation`]: the buyer's reputation table's counters,
/// under the key the order book ranks. Version 3.
pub(crate) const PROVIDER_REPUTATION: TableDefinition<'_, &[u8; 32], &[u8]> =
    TableDefinition::new("provider_reputation");
/// EVM account → the ed25519 key it registered with a proof that verified: how the
/// reputation table files the chain's events of an account. Version 3.
pub(crate) const PROVIDER_KEYS: TableDefinition<'_, &[u8; 20], &[u8; 32]> =
    TableDefinition::new("provider_keys");
/// Ticket id → [`super::DisputableTicket`]: a ticket whose payment the buyer withheld, to
/// dispute if its provider claims it. Version 3.
pub(crate) const DISPUTABLE: TableDefinition<'_, &[u8; 32], &[u8]> =
    TableDefinition::new("disputable_tickets");

/// One step of the layout: from the version it is at in [`Schema`] to the next. It runs in
/// the write transaction that then records the new version; returning an error aborts both.
#[derive(Clone, Copy)]
pub struct Migration {
    /// What the step does, for logs and errors.
    pub name: &'static str,
    /// The step itself.
    pub apply: fn(&redb::WriteTransaction) -> Result<(), StoreError>,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("name", &self.name)
            .finish()
    }
}

/// The ordered migrations of a layout: step `i` takes version `i` to `i + 1`, so the
/// layout's version is the number of steps. [`Schema::current`] is this build's layout;
/// tests extend it to check upgrades.
#[derive(Debug, Clone)]
pub struct Schema {
    migrations: Vec<Migration>,
}

impl Schema {
    /// The layout this build writes.
    pub fn current() -> Self {
        Self {
            migrations: vec![
                Migration {
                    name: "create the version-1 tables",
                    apply: create_v1_tables,
                },
                Migration {
                    name: "add job_outputs (a job's outputs)",
                    apply: add_job_outputs,
                },
                Migration {
                    name: "reputation by node key (provider_reputation, provider_keys) in place \
                           of reputation by account; add disputable_tickets",
                    apply: one_reputation,
                },
            ],
        }
    }

    /// This layout followed by one more step.
    #[must_use]
    pub fn then(mut self, step: Migration) -> Self {
        self.migrations.push(step);
        self
    }

    /// The version a file has once every step has run.
    pub fn version(&self) -> u64 {
        self.migrations.len() as u64
    }
}

/// The schema version of this build.
pub const SCHEMA_VERSION: u64 = 3;

fn create_v1_tables(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(NODE_KEYS)?;
    tx.open_table(CONFIG)?;
    tx.open_table(OWN_OFFERS)?;
    tx.open_table(JOB_SPECS)?;
    tx.open_table(BUYER_JOBS)?;
    tx.open_table(PROVIDER_JOBS)?;
    tx.open_table(VOUCHERS)?;
    tx.open_table(CHAIN_CURSOR)?;
    tx.open_table(OLD_REPUTATION)?;
    Ok(())
}

fn add_job_outputs(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(JOB_OUTPUTS)?;
    Ok(())
}

/// Version 3: one reputation. The version-2 `reputation` table counted by the store's own
/// rule, by EVM account, and was never read; the order book ranks by node key with the
/// verifier's counters (`sietch_verifier::ReputationTable`), which version 3 persists. Its
/// rows cannot be filed under node keys without the chain (and counted other events), so
/// they are dropped: the buyer counts again from here.
fn one_reputation(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.delete_table(OLD_REPUTATION)?;
    tx.open_table(PROVIDER_REPUTATION)?;
    tx.open_table(PROVIDER_KEYS)?;
    tx.open_table(DISPUTABLE)?;
    Ok(())
}

/// The version recorded in the file: 0 for a file with no tables, an error for a file with
/// tables but no version (not ours).
fn read_version(db: &Database, path: &Path) -> Result<u64, StoreError> {
    let tx = db.begin_read()?;
    let tables: Vec<String> = tx.list_tables()?.map(|t| t.name().to_owned()).collect();
    if !tables.iter().any(|t| t == SCHEMA_TABLE.name()) {
        if tables.is_empty() {
            return Ok(0);
        }
        return Err(StoreError::NotAStore {
            path: path.to_owned(),
            tables,
        });
    }
    let table = tx.open_table(SCHEMA_TABLE)?;
    Ok(table.get(VERSION_KEY)?.map_or(0, |v| v.value()))
}

/// Brings the file to `schema`'s version, one transaction per step. Returns the version the
/// file had before.
pub(crate) fn migrate(db: &Database, path: &Path, schema: &Schema) -> Result<u64, StoreError> {
    let found = read_version(db, path)?;
    let supported = schema.version();
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    for (from, step) in (0u64..)
        .zip(&schema.migrations)
        .skip_while(|(v, _)| *v < found)
    {
        tracing::info!(
            from,
            to = from + 1,
            step = step.name,
            "migrating {}",
            path.display()
        );
        let tx = db.begin_write()?;
        (step.apply)(&tx).map_err(|e| StoreError::Migration {
            from,
            name: step.name,
            reason: e.to_string(),
        })?;
        tx.open_table(SCHEMA_TABLE)?.insert(VERSION_KEY, from + 1)?;
        tx.commit()?;
    }
    Ok(found)
}
