//! `docs/protocol/vectors/extensions.json`: signed messages with an extension block (fields
//! added within a major version, docs/protocol/encoding.md "Extensions"): how they encode,
//! what is signed, what a decoder that knows none of the records does with them, and what
//! must be refused.

use serde_json::{Value, json};
use sietch_market::codec::{Canonical, Reader, Writer, ext};
use sietch_market::offer::EXT_PROTOCOL_VERSION;
use sietch_market::signed::signing_bytes_extended;
use sietch_market::{
    DecodeError, Extensions, Offer, ProtocolVersion, Signable, Signed, Withdrawal,
};
use sietch_node::net::OfferClass;

use super::{committed, ed_key, error_kind, hx, offer, offer_j, unhex, withdrawal, withdrawal_j};

/// An unknown record of a later minor version: odd, so kept by every decoder.
const LATER: u16 = 0x0103;

fn v1_1() -> ProtocolVersion {
    ProtocolVersion {
        major: 1,
        minor: 1,
        patch: 0,
    }
}

/// The block of a 1.1 offer, with a record of a later minor version when `later`.
fn block(later: bool) -> Extensions {
    let mut e = Extensions::new();
    e.insert(EXT_PROTOCOL_VERSION, v1_1().to_bytes());
    if later {
        e.insert(LATER, b"a field of version 1.3".to_vec());
    }
    e
}

fn block_bytes(e: &Extensions) -> Vec<u8> {
    let mut w = Writer::new();
    e.encode(&mut w);
    w.into_bytes()
}

fn records_j(e: &Extensions) -> Value {
    Value::Array(
        e.iter()
            .map(|r| json!({ "tag": r.tag, "data": hx(&r.data) }))
            .collect(),
    )
}

fn signed_j(payload: Value, e: &Extensions, signature: &[u8; 64]) -> Value {
    json!({ "payload": payload, "extensions": records_j(e), "signature": hx(signature) })
}

/// Decodes a vector's bytes: its fields and its bytes encoded again.
fn decode(ty: &str, b: &[u8]) -> Result<(Value, Vec<u8>), DecodeError> {
    match ty {
        "SignedOffer" => {
            let m = Signed::<Offer>::decode(b)?;
            let j = signed_j(offer_j(&m.payload), &m.extensions, &m.signature);
            Ok((j, m.encode()))
        }
        "SignedWithdrawal" => {
            let m = Signed::<Withdrawal>::decode(b)?;
            let j = signed_j(withdrawal_j(&m.payload), &m.extensions, &m.signature);
            Ok((j, m.encode()))
        }
        t => panic!("no decoder for {t}"),
    }
}

pub(super) fn file() -> Value {
    let key = ed_key();
    let vector = |name: &str, d: &str, ty: &str, fields: Value, bytes: &[u8]| {
        json!({
            "name": name,
            "type": ty,
            "description": d,
            "fields": fields,
            "hex": hex::encode(bytes),
            "message_id": hx(blake3::hash(bytes).as_bytes()),
        })
    };
    let offer_vector = |name: &str, d: &str, o: Offer, e: Extensions| {
        let topic = OfferClass::of(&o).topic().to_string();
        let s = Signed::sign_extended(o, e, &key);
        let mut v = vector(
            name,
            d,
            "SignedOffer",
            signed_j(offer_j(&s.payload), &s.extensions, &s.signature),
            &s.encode(),
        );
        v["topic"] = json!(topic);
        v
    };
    let w = Signed::sign_extended(withdrawal(), block(false), &key);
    let vectors = vec![
        offer_vector(
            "signed_offer_1_1",
            "An offer of a 1.1 provider: no tail of its own (max_input_bytes 0, no held blobs), so the tail is written empty (8 zero bytes and a zero count) before the block; the block holds record 1, the provider's protocol version 1.1.0 (three u32).",
            offer(false),
            block(false),
        ),
        offer_vector(
            "signed_offer_1_1_with_tail_and_a_later_record",
            "An offer with its tail (max_input_bytes, one held blob), record 1 and record 0x0103, odd and unknown to every decoder today: kept as bytes, signed, passed on.",
            offer(true),
            block(true),
        ),
        vector(
            "signed_withdrawal_with_a_record",
            "A withdrawal with one record: a withdrawal's body is fixed, so the block follows its sequence directly. Record 1 means nothing in a withdrawal, and is odd, so it is kept.",
            "SignedWithdrawal",
            signed_j(withdrawal_j(&w.payload), &w.extensions, &w.signature),
            &w.encode(),
        ),
    ];

    // What is signed, taken apart.
    let o = Signed::sign_extended(offer(true), block(true), &key);
    let signature = json!({
        "name": "offer_with_records",
        "description": "ed25519 over context || 0x00 || the offer's canonical bytes (kind 1, its tail included) || the extension block.",
        "context": String::from_utf8(Offer::CONTEXT.to_vec()).unwrap(),
        "payload": hex::encode(o.payload.encode()),
        "block": hex::encode(block_bytes(&o.extensions)),
        "signed_bytes": hex::encode(signing_bytes_extended(&o.payload, &o.extensions)),
        "signature": hx(o.signature),
        "envelope": hex::encode(o.encode()),
    });

    let plain = Signed::sign(offer(false), &key).encode();
    let with = |records: &[(u16, &[u8])]| {
        let mut e = Extensions::new();
        for (t, d) in records {
            e.insert(*t, d.to_vec());
        }
        Signed::sign_extended(offer(true), e, &key).encode()
    };
    // Two records, then swapped by hand.
    let swapped = {
        let good = with(&[(3, b"a"), (5, b"b")]);
        let sig = good.len() - 64;
        let (a, b) = (sig - 14, sig - 7);
        let mut out = good[..a].to_vec();
        out.extend_from_slice(&good[b..sig]);
        out.extend_from_slice(&good[a..b]);
        out.extend_from_slice(&good[sig..]);
        out
    };
    let too_many: Vec<(u16, Vec<u8>)> = (0..=ext::MAX_EXTENSIONS as u16)
        .map(|i| (2 * i + 3, vec![]))
        .collect();
    let too_many = {
        let s = Signed::sign(offer(true), &key).encode();
        let sig = s.len() - 64;
        let mut out = s[..sig].to_vec();
        for (t, d) in &too_many {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&(d.len() as u32).to_be_bytes());
        }
        out.extend_from_slice(&s[sig..]);
        out
    };
    let rows: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "signed_offer_unknown_critical_record",
            "A record of tag 2, even and unknown to this build: the sender needs it understood, so the offer is refused (CriticalExtension).",
            with(&[(2, b"must be understood")]),
        ),
        (
            "signed_offer_records_out_of_order",
            "Records 5 then 3: tags must strictly increase.",
            swapped,
        ),
        (
            "signed_offer_version_record_of_11_bytes",
            "Record 1 (the protocol version) of 11 bytes where it has 12.",
            with(&[(EXT_PROTOCOL_VERSION, &[0; 11])]),
        ),
        (
            "signed_offer_17_records",
            "17 empty records of odd tags from 3 on, at most 16.",
            too_many,
        ),
        (
            "signed_offer_record_cut_short",
            "A CPU offer without a tail followed by 5 bytes: read as a tail (u64 max_input_bytes), it ends inside it.",
            {
                let sig = plain.len() - 64;
                let mut out = plain[..sig].to_vec();
                out.extend_from_slice(&[0, 1, 0, 0, 0]);
                out.extend_from_slice(&plain[sig..]);
                out
            },
        ),
    ];
    let invalid: Vec<Value> = rows
        .into_iter()
        .map(|(name, d, bytes)| {
            let err = decode("SignedOffer", &bytes).expect_err(name);
            json!({
                "name": name,
                "type": "SignedOffer",
                "description": d,
                "hex": hex::encode(&bytes),
                "error": error_kind(&err),
                "detail": err.to_string(),
            })
        })
        .collect();
    json!({
        "comment": "Signed messages with an extension block (docs/protocol/encoding.md \"Extensions\"): records of u16 tag and u32-length bytes, tags strictly increasing, at most 16, after the payload's body and before the signature; odd tags may be ignored, even ones must be understood. `extensions` lists the records as tag and hex data. Regenerate: SIETCH_BLESS=1 cargo test -p sietch-node --test protocol_vectors",
        "vectors": vectors,
        "signature": signature,
        "invalid": invalid,
    })
}

#[test]
fn committed_extended_messages_decode_verify_and_pass_through_an_old_decoder() {
    let doc = committed("extensions.json");
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 3);
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let ty = v["type"].as_str().unwrap();
        let bytes = unhex(&v["hex"]);
        let (fields, again) = decode(ty, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(fields, v["fields"], "{name}: fields");
        assert_eq!(hex::encode(again), v["hex"], "{name}: re-encoded");
        assert_eq!(
            v["message_id"],
            hx(blake3::hash(&bytes).as_bytes()),
            "{name}: message id covers the records"
        );
        assert!(!v["fields"]["extensions"].as_array().unwrap().is_empty());
        if ty == "SignedOffer" {
            let s = Signed::<Offer>::decode(&bytes).unwrap();
            assert_eq!(s.protocol_version(), Some(v1_1()), "{name}");
            s.verify().unwrap();
            // A decoder that knows no record keeps them all, checks the signature and
            // writes the same bytes.
            let old = Signed::<Offer>::decode_knowing(&bytes, ext::knows_none).unwrap();
            assert_eq!(old.encode(), bytes, "{name}: an old node's bytes");
            old.verify().unwrap();
        } else {
            Signed::<Withdrawal>::decode(&bytes)
                .unwrap()
                .verify()
                .unwrap();
        }
    }

    let s = &doc["signature"];
    let (payload, block) = (unhex(&s["payload"]), unhex(&s["block"]));
    let mut expected = s["context"].as_str().unwrap().as_bytes().to_vec();
    expected.push(0);
    expected.extend_from_slice(&payload);
    expected.extend_from_slice(&block);
    assert_eq!(
        unhex(&s["signed_bytes"]),
        expected,
        "context || 0 || payload || block"
    );
    let p = Offer::decode(&payload).unwrap();
    let e = Extensions::decode(
        &mut Reader::new(&block),
        Offer::MAX_SIZE,
        Offer::known_extension,
    )
    .unwrap();
    assert_eq!(signing_bytes_extended(&p, &e), expected);
    let again = Signed::sign_extended(p, e, &ed_key());
    assert_eq!(hx(again.signature), s["signature"], "signed again");
    assert_eq!(hex::encode(again.encode()), s["envelope"]);

    let mut kinds = std::collections::BTreeSet::new();
    for v in doc["invalid"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let err = decode("SignedOffer", &unhex(&v["hex"]))
            .map(|_| ())
            .expect_err(name);
        assert_eq!(error_kind(&err), v["error"], "{name}: {err}");
        kinds.insert(error_kind(&err));
    }
    for k in ["CriticalExtension", "Invalid", "TooLong", "UnexpectedEnd"] {
        assert!(kinds.contains(k), "no invalid extension vector of kind {k}");
    }
}
