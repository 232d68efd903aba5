//! What the node holds against the chain: the latest voucher of each payment channel, the
//! last block indexed, and the tickets to dispute if their provider claims them.

use redb::{ReadableDatabase, ReadableTable};
use sietch_market::{B256, Voucher};

use super::records::Record;
use super::schema::{CHAIN_CURSOR, DISPUTABLE, VOUCHERS};
use super::{DisputableTicket, EvmSigned, Store, StoreError, VoucherUpdate, decode};

const VOUCHERS_NAME: &str = "vouchers";
const DISPUTABLE_NAME: &str = "disputable_tickets";

impl Store {
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

/// The voucher rule inside a caller's transaction.
pub(super) fn upsert_voucher(
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
