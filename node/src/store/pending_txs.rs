//! The node's own transactions sent and not yet seen mined (`docs/transactions.md`): what a
//! restarted node must know so that it watches them again, never sends one a second time
//! under a new nonce, and sends its next one after them.
//!
//! One table, `pending_txs`: key chain id (8 bytes, big-endian) ‖ account (20) ‖ nonce (8,
//! big-endian), value a [`PendingTx`]. It is created by the first write (a store that never
//! sent a transaction has none, and reads find nothing), so it needs no schema step: a binary
//! without it ignores the table.

use redb::{ReadableDatabase, TableDefinition, TableError};
use sietch_market::codec::{Reader, Writer};
use sietch_market::{Address, B256, DecodeError};

use super::records::Record;
use super::{Store, StoreError, decode};

const NAME: &str = "pending_txs";
const PENDING_TXS: TableDefinition<'_, &[u8; 36], &[u8]> = TableDefinition::new(NAME);

/// Most versions (the first send and its replacements) a pending transaction keeps.
pub const MAX_TX_VERSIONS: usize = 64;
/// Longest call data kept (a batch of vouchers is the largest call the node makes).
pub const MAX_TX_INPUT: usize = 256 * 1024;
/// Longest purpose kept.
pub const MAX_TX_PURPOSE: usize = 64;

/// A transaction of this node sent with one nonce, in all its versions: the same call, fees
/// raised by each replacement. At most one version can be mined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTx {
    /// What it was for (the escrow function, `approve`), for logs.
    pub purpose: String,
    /// The nonce every version has.
    pub nonce: u64,
    /// The contract called.
    pub to: Address,
    /// The call data.
    pub input: Vec<u8>,
    /// Gas limit.
    pub gas: u64,
    /// `maxFeePerGas` of the latest version, in wei.
    pub max_fee: u128,
    /// `maxPriorityFeePerGas` of the latest version, in wei.
    pub priority_fee: u128,
    /// Unix seconds the latest version was sent.
    pub sent_at: u64,
    /// The hash of every version sent, the latest last.
    pub hashes: Vec<B256>,
}

impl PendingTx {
    /// The hash of the latest version.
    pub fn latest(&self) -> Option<B256> {
        self.hashes.last().copied()
    }
}

impl Record for PendingTx {
    const WHAT: &'static str = "pending transaction";
    const MAX_SIZE: usize = 1
        + 4
        + MAX_TX_PURPOSE
        + 8
        + 20
        + 4
        + MAX_TX_INPUT
        + 8
        + 16
        + 16
        + 8
        + 4
        + 32 * MAX_TX_VERSIONS;

    fn encode_body(&self, w: &mut Writer) {
        w.str(&self.purpose);
        w.u64(self.nonce);
        w.address(&self.to);
        w.bytes(&self.input);
        w.u64(self.gas);
        w.u128(self.max_fee);
        w.u128(self.priority_fee);
        w.u64(self.sent_at);
        w.u32(u32::try_from(self.hashes.len()).unwrap_or(u32::MAX));
        for h in &self.hashes {
            w.b256(h);
        }
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let purpose = r.string("purpose", MAX_TX_PURPOSE)?;
        let nonce = r.u64()?;
        let to = r.address()?;
        let input = r.bytes("input", MAX_TX_INPUT)?.to_vec();
        let gas = r.u64()?;
        let max_fee = r.u128()?;
        let priority_fee = r.u128()?;
        let sent_at = r.u64()?;
        let n = r.u32()? as usize;
        if n > MAX_TX_VERSIONS {
            return Err(DecodeError::Oversized {
                len: n,
                max: MAX_TX_VERSIONS,
            });
        }
        let mut hashes = Vec::with_capacity(n);
        for _ in 0..n {
            hashes.push(r.b256()?);
        }
        Ok(Self {
            purpose,
            nonce,
            to,
            input,
            gas,
            max_fee,
            priority_fee,
            sent_at,
            hashes,
        })
    }
}

fn key(chain_id: u64, account: &Address, nonce: u64) -> [u8; 36] {
    let mut k = [0u8; 36];
    let parts = chain_id
        .to_be_bytes()
        .into_iter()
        .chain(account.as_slice().iter().copied())
        .chain(nonce.to_be_bytes());
    for (d, s) in k.iter_mut().zip(parts) {
        *d = s;
    }
    k
}

impl Store {
    /// Keeps (or updates: a replacement) a pending transaction of `account` on `chain_id`,
    /// durably, before it is sent.
    pub fn put_pending_tx(
        &self,
        chain_id: u64,
        account: &Address,
        tx: &PendingTx,
    ) -> Result<(), StoreError> {
        let w = self.db().begin_write()?;
        w.open_table(PENDING_TXS)?
            .insert(&key(chain_id, account, tx.nonce), tx.to_bytes().as_slice())?;
        w.commit()?;
        Ok(())
    }

    /// Forgets a pending transaction (mined, or its nonce taken by another); whether it was
    /// kept.
    pub fn remove_pending_tx(
        &self,
        chain_id: u64,
        account: &Address,
        nonce: u64,
    ) -> Result<bool, StoreError> {
        let w = self.db().begin_write()?;
        let was = w
            .open_table(PENDING_TXS)?
            .remove(&key(chain_id, account, nonce))?
            .is_some();
        w.commit()?;
        Ok(was)
    }

    /// Up to `limit` pending transactions of `account` on `chain_id`, by nonce.
    pub fn pending_txs(
        &self,
        chain_id: u64,
        account: &Address,
        limit: usize,
    ) -> Result<Vec<PendingTx>, StoreError> {
        let r = self.db().begin_read()?;
        let table = match r.open_table(PENDING_TXS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let from = key(chain_id, account, 0);
        let to = key(chain_id, account, u64::MAX);
        let mut out = Vec::new();
        for entry in table.range::<&[u8; 36]>(&from..=&to)?.take(limit) {
            let (k, v) = entry?;
            out.push(decode(NAME, hex::encode(k.value()), v.value())?);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> PendingTx {
        PendingTx {
            purpose: "stake".into(),
            nonce: 7,
            to: Address::repeat_byte(0x21),
            input: vec![0xa6, 0x94, 0xfc, 0x3a],
            gas: 90_000,
            max_fee: 3_000_000_000,
            priority_fee: 1_000_000_000,
            sent_at: 1_700_000_000,
            hashes: vec![B256::repeat_byte(0x22), B256::repeat_byte(0x23)],
        }
    }

    /// The record's exact bytes: a change of encoding fails here and needs a new record
    /// version (the table's rows outlive a binary).
    #[test]
    fn pending_tx_bytes_are_pinned() {
        let bytes = sample().to_bytes();
        assert_eq!(
            hex::encode(&bytes),
            concat!(
                "01000000057374616b65000000000000000721212121212121212121212121212121212121210000",
                "0004a694fc3a0000000000015f90000000000000000000000000b2d05e0000000000000000000000",
                "00003b9aca00000000006553f1000000000222222222222222222222222222222222222222222222",
                "22222222222222222222232323232323232323232323232323232323232323232323232323232323",
                "2323",
            )
        );
        assert_eq!(PendingTx::from_bytes(&bytes).unwrap(), sample());
    }

    #[test]
    fn kept_by_chain_account_and_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let me = Address::repeat_byte(1);
        assert!(store.pending_txs(1, &me, 10).unwrap().is_empty());
        let mut a = sample();
        store.put_pending_tx(1, &me, &a).unwrap();
        a.nonce = 8;
        store.put_pending_tx(1, &me, &a).unwrap();
        store.put_pending_tx(2, &me, &a).unwrap();
        store
            .put_pending_tx(1, &Address::repeat_byte(2), &a)
            .unwrap();
        let mine: Vec<u64> = store
            .pending_txs(1, &me, 10)
            .unwrap()
            .iter()
            .map(|t| t.nonce)
            .collect();
        assert_eq!(mine, vec![7, 8]);
        assert!(store.remove_pending_tx(1, &me, 7).unwrap());
        assert!(!store.remove_pending_tx(1, &me, 7).unwrap());
        assert_eq!(store.pending_txs(1, &me, 10).unwrap().len(), 1);
    }
}
