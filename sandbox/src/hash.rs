//! The output hash: blake3 over a canonical, length-prefixed encoding of how the job ended,
//! its stdout and its `/output` files. The encoding is specified in `sandbox/README.md` and
//! pinned by an exact-byte test; changing it changes every hash in the market.

use std::collections::BTreeMap;

use crate::Outcome;

/// Domain separator at the start of the encoding.
pub const OUTPUT_HASH_DOMAIN: &[u8; 16] = b"sietch-output-v1";

/// The canonical encoding hashed by [`output_hash`]:
///
/// ```text
/// "sietch-output-v1"                    16 bytes
/// outcome tag                            u8
/// exit code / trap code                  i32 little-endian
/// stdout length, stdout                  u64 LE, bytes
/// number of /output files                u64 LE
/// per file, sorted by name bytes:
///   name length, name, data length, data u64 LE, bytes, u64 LE, bytes
/// ```
pub fn encode_output(
    outcome: Outcome,
    stdout: &[u8],
    outputs: &BTreeMap<String, Vec<u8>>,
) -> Vec<u8> {
    let (tag, value) = outcome.tag();
    let size = 16
        + 1
        + 4
        + 8
        + stdout.len()
        + 8
        + outputs
            .iter()
            .map(|(n, d)| 16 + n.len() + d.len())
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(OUTPUT_HASH_DOMAIN);
    out.push(tag);
    out.extend_from_slice(&value.to_le_bytes());
    put_bytes(&mut out, stdout);
    out.extend_from_slice(&(outputs.len() as u64).to_le_bytes());
    // BTreeMap<String, _> iterates in byte order of the names.
    for (name, data) in outputs {
        put_bytes(&mut out, name.as_bytes());
        put_bytes(&mut out, data);
    }
    out
}

/// blake3 of [`encode_output`], computed without building the encoding in memory.
pub fn output_hash(
    outcome: Outcome,
    stdout: &[u8],
    outputs: &BTreeMap<String, Vec<u8>>,
) -> [u8; 32] {
    let (tag, value) = outcome.tag();
    let mut h = blake3::Hasher::new();
    h.update(OUTPUT_HASH_DOMAIN);
    h.update(&[tag]);
    h.update(&value.to_le_bytes());
    h.update(&(stdout.len() as u64).to_le_bytes());
    h.update(stdout);
    h.update(&(outputs.len() as u64).to_le_bytes());
    for (name, data) in outputs {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(&(data.len() as u64).to_le_bytes());
        h.update(data);
    }
    *h.finalize().as_bytes()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TrapKind;

    #[test]
    fn encoding_is_pinned_byte_for_byte() {
        let mut outputs = BTreeMap::new();
        outputs.insert("b".to_string(), vec![0xBB]);
        outputs.insert("a".to_string(), vec![]);
        let enc = encode_output(Outcome::Exited { code: -2 }, b"hi", &outputs);
        let mut want = b"sietch-output-v1".to_vec();
        want.push(0);
        want.extend_from_slice(&[0xFE, 0xFF, 0xFF, 0xFF]);
        want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, b'h', b'i']);
        want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, b'a', 0, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, b'b', 1, 0, 0, 0, 0, 0, 0, 0, 0xBB]);
        assert_eq!(enc, want);
        assert_eq!(
            output_hash(Outcome::Exited { code: -2 }, b"hi", &outputs),
            *blake3::hash(&want).as_bytes()
        );
    }

    #[test]
    fn outcomes_round_trip_through_their_tags() {
        for o in [
            Outcome::Exited { code: -7 },
            Outcome::OutOfFuel,
            Outcome::DeadlineExceeded,
            Outcome::MemoryLimitExceeded,
            Outcome::OutputTooLarge,
            Outcome::Trapped {
                trap: TrapKind::Unreachable,
            },
            Outcome::Trapped {
                trap: TrapKind::Other,
            },
        ] {
            let (t, v) = o.tag();
            assert_eq!(Outcome::from_tag(t, v), Some(o));
        }
        assert_eq!(Outcome::from_tag(1, 5), None);
        assert_eq!(Outcome::from_tag(5, 77), None);
        assert_eq!(Outcome::from_tag(9, 0), None);
    }

    #[test]
    fn outcome_tags_are_pinned() {
        let empty = BTreeMap::new();
        let trap = encode_output(
            Outcome::Trapped {
                trap: TrapKind::StackOverflow,
            },
            b"",
            &empty,
        );
        assert_eq!(trap.get(16..21), Some(&[5u8, 1, 0, 0, 0][..]));
        let fuel = encode_output(Outcome::OutOfFuel, b"", &empty);
        assert_eq!(fuel.get(16..21), Some(&[1u8, 0, 0, 0, 0][..]));
    }

    proptest::proptest! {
        #[test]
        fn streamed_hash_matches_encoding(
            code in proptest::prelude::any::<i32>(),
            stdout in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            files in proptest::collection::btree_map("[a-z]{1,8}", proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32), 0..4),
        ) {
            let outcome = Outcome::Exited { code };
            proptest::prop_assert_eq!(
                output_hash(outcome, &stdout, &files),
                *blake3::hash(&encode_output(outcome, &stdout, &files)).as_bytes()
            );
        }
    }
}
