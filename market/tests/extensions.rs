//! Fields added within a major version (docs/protocol/encoding.md, "Extensions"): a signed
//! message's extension block, read by a decoder that knows its records and by one that knows
//! none of them (a node of the previous minor version), signed and re-encoded to the same bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::*;
use sietch_market::codec::{Kind, ext};
use sietch_market::offer::EXT_PROTOCOL_VERSION;
use sietch_market::signed::{signing_bytes, signing_bytes_extended};
use sietch_market::*;

/// How a node of version 1.0 reads a signed offer: it knows no extension record.
fn as_1_0(bytes: &[u8]) -> Result<Signed<Offer>, DecodeError> {
    Signed::<Offer>::decode_knowing(bytes, ext::knows_none)
}

const V1_1: ProtocolVersion = ProtocolVersion {
    major: 1,
    minor: 1,
    patch: 0,
};

/// Extensions of a 1.1 offer, plus a record of a later minor version (odd: optional) that no
/// build knows yet.
fn extensions(later: bool) -> Extensions {
    let mut e = Extensions::new();
    assert!(e.insert(EXT_PROTOCOL_VERSION, V1_1.to_bytes()));
    if later {
        assert!(e.insert(0x0103, b"from a later minor".to_vec()));
    }
    e
}

#[test]
fn an_extended_offer_is_signed_over_its_extensions_and_reads_back() {
    let s = Signed::sign_extended(offer(1), extensions(true), &key(1));
    let bytes = s.encode();
    let back = Signed::<Offer>::decode(&bytes).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.encode(), bytes);
    assert_eq!(back.protocol_version(), Some(V1_1));
    assert!(back.clone().verify().is_ok());
    // The extensions are signed: changing one byte of them breaks the signature.
    let mut tampered = back.clone();
    let mut e = tampered.extensions.clone();
    e.insert(0x0103, b"from a later minoR".to_vec());
    tampered.extensions = e;
    assert_eq!(tampered.verify().unwrap_err(), SignatureError::BadSignature);
    // So is dropping them.
    let mut stripped = back;
    stripped.extensions = Extensions::new();
    assert_eq!(stripped.verify().unwrap_err(), SignatureError::BadSignature);
}

#[test]
fn a_node_that_knows_no_extension_keeps_them_verifies_and_passes_the_same_bytes_on() {
    let new = Signed::sign_extended(offer(2), extensions(true), &key(2));
    let bytes = new.encode();
    let old = as_1_0(&bytes).unwrap();
    assert_eq!(old.payload, new.payload);
    assert_eq!(old.extensions, new.extensions);
    assert_eq!(old.encode(), bytes, "re-encoded to other bytes");
    assert!(
        old.verify().is_ok(),
        "the old node cannot check the signature"
    );
}

#[test]
fn an_offer_without_extensions_keeps_its_bytes() {
    let o = offer(3);
    let plain = Signed::sign(o.clone(), &key(3));
    assert!(plain.extensions.is_empty());
    assert_eq!(
        Signed::sign_extended(o.clone(), Extensions::new(), &key(3)),
        plain
    );
    assert_eq!(
        signing_bytes_extended(&o, &Extensions::new()),
        signing_bytes(&o)
    );
    // Header, the offer's body as an unsigned offer has it, the signature.
    let mut expected = vec![codec::VERSION, Kind::SignedOffer as u8];
    expected.extend_from_slice(&o.encode()[2..]);
    expected.extend_from_slice(&plain.signature);
    assert_eq!(plain.encode(), expected);
}

#[test]
fn an_empty_legacy_tail_is_written_before_a_block_and_only_then() {
    let o = offer(4);
    assert_eq!((o.max_input_bytes, o.cached_blobs.len()), (0, 0));
    let s = Signed::sign_extended(o.clone(), extensions(false), &key(4));
    let bytes = s.encode();
    // The signed envelope's header is as long as the unsigned offer's.
    let body_end = o.encode().len();
    // max_input_bytes 0, no held blobs, then the record: tag 1, length 12, the version.
    let mut tail = vec![0u8; 8 + 4];
    tail.extend_from_slice(&EXT_PROTOCOL_VERSION.to_be_bytes());
    tail.extend_from_slice(&12u32.to_be_bytes());
    tail.extend_from_slice(&V1_1.to_bytes());
    assert_eq!(&bytes[body_end..bytes.len() - 64], &tail[..]);
    assert_eq!(Signed::<Offer>::decode(&bytes).unwrap(), s);
    // Without a block after it, an empty tail is still refused (one encoding per value).
    let mut no_block = bytes[..body_end + 12].to_vec();
    no_block.extend_from_slice(&s.signature);
    assert!(matches!(
        Signed::<Offer>::decode(&no_block),
        Err(DecodeError::Invalid { .. })
    ));
}

#[test]
fn unknown_critical_malformed_and_unordered_records_are_refused() {
    let with = |records: &[(u16, &[u8])]| {
        let mut e = Extensions::new();
        for (t, d) in records {
            e.insert(*t, d.to_vec());
        }
        Signed::sign_extended(offer(5), e, &key(5)).encode()
    };
    assert_eq!(
        Signed::<Offer>::decode(&with(&[(2, b"must be understood")])),
        Err(DecodeError::CriticalExtension { tag: 2 })
    );
    assert!(matches!(
        Signed::<Offer>::decode(&with(&[(EXT_PROTOCOL_VERSION, &[0; 11])])),
        Err(DecodeError::Invalid { .. })
    ));
    // An old node does not know extension 1, so it cannot refuse a malformed one: it keeps
    // it, and the newer node's check is what guards it.
    assert!(as_1_0(&with(&[(EXT_PROTOCOL_VERSION, &[0; 11])])).is_ok());
    // Nor does it know tag 2, so it refuses a message that needs it understood.
    assert_eq!(
        as_1_0(&with(&[(2, b"")])),
        Err(DecodeError::CriticalExtension { tag: 2 })
    );
    // Records out of order: swap two records' places by hand.
    let good = with(&[(3, b"a"), (5, b"b")]);
    let rec = |t: u16, d: u8| {
        let mut r = t.to_be_bytes().to_vec();
        r.extend_from_slice(&1u32.to_be_bytes());
        r.push(d);
        r
    };
    let (a, b) = (rec(3, b'a'), rec(5, b'b'));
    let start = good.len() - 64 - a.len() - b.len();
    let mut swapped = good[..start].to_vec();
    swapped.extend_from_slice(&b);
    swapped.extend_from_slice(&a);
    swapped.extend_from_slice(&good[good.len() - 64..]);
    assert!(matches!(
        Signed::<Offer>::decode(&swapped),
        Err(DecodeError::Invalid { .. })
    ));
}

#[test]
fn a_withdrawal_carries_a_block_too() {
    let w = Withdrawal {
        provider: PublicKey::of(&key(6)),
        sequence: 9,
    };
    let mut e = Extensions::new();
    e.insert(0x0201, vec![1, 2, 3]);
    let s = Signed::sign_extended(w, e, &key(6));
    let back = Signed::<Withdrawal>::decode(&s.encode()).unwrap();
    assert_eq!(back, s);
    assert!(back.verify().is_ok());
    // An unsigned message has no block: bytes after it are trailing.
    let mut unsigned = s.payload.encode();
    unsigned.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
    assert_eq!(
        Withdrawal::decode(&unsigned),
        Err(DecodeError::TrailingBytes(6))
    );
}
