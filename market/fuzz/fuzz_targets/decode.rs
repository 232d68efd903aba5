//! Decoding arbitrary bytes as any protocol message must never panic, and anything that
//! decodes must re-encode to exactly the same bytes (the encoding is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sietch_market::{
    Canonical, JobSpec, Offer, OrderBook, ResultCommitment, Signed, Ticket, Voucher, Withdrawal,
};

fn canonical<T: Canonical>(data: &[u8]) {
    if let Ok(v) = T::decode(data) {
        assert_eq!(v.encode(), data, "accepted bytes are not canonical");
    }
}

fuzz_target!(|data: &[u8]| {
    canonical::<Offer>(data);
    canonical::<JobSpec>(data);
    canonical::<Ticket>(data);
    canonical::<ResultCommitment>(data);
    canonical::<Voucher>(data);
    canonical::<Withdrawal>(data);
    if let Ok(s) = Signed::<Offer>::decode(data) {
        assert_eq!(s.encode(), data);
    }
    // The book's whole ingest path (decode, verify, insert) on hostile bytes.
    let mut book = OrderBook::default();
    let _ = book.ingest(data, 1_700_000_000);
});
