//! A job's result, one contract for every role: how a run ended ([`Outcome`]), what it
//! produced ([`Outputs`], its files an [`OutputFiles`] map), the one canonical encoding and
//! output hash of those ([`encode_output`], [`output_hash`]), what a run costs
//! ([`crate::settlement::cost`]) and whether a signed result is what it claims to be
//! ([`check_result`]).
//!
//! The sandbox produces these types, the node carries them on the wire and the verifier
//! compares them: none of them re-encodes or re-hashes a result on its own. The encoding is
//! specified in `sandbox/README.md` and pinned byte for byte by the tests below; changing it
//! changes every output hash in the market.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256};
use serde::Serialize;

use crate::eip712::{Domain, TypedData};
use crate::error::Eip712Error;
use crate::names::{NameError, check_file_name, printable};
use crate::settlement::ResultCommitment;

/// A job's `/output` files by name, sorted by name bytes: the one form they take from the
/// sandbox through the wire to the buyer's store and the verifier's comparison.
pub type OutputFiles = BTreeMap<String, Vec<u8>>;

/// Domain separator at the start of the output encoding.
pub const OUTPUT_HASH_DOMAIN: &[u8; 16] = b"sietch-output-v1";

/// How a job ended. Every ending is an outcome the buyer reads, not an error of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// `_start` returned (code 0) or the guest called `proc_exit(code)`.
    Exited {
        /// The exit code.
        code: i32,
    },
    /// The job burned all its fuel.
    OutOfFuel,
    /// The wall-clock deadline passed.
    DeadlineExceeded,
    /// The job tried to grow its memory or a table past its limit.
    MemoryLimitExceeded,
    /// The job wrote more than its stdout or `/output` allowance.
    OutputTooLarge,
    /// The guest trapped.
    Trapped {
        /// Why.
        trap: TrapKind,
    },
    /// A tag and value that no run gives, as a peer sent them ([`Outcome::from_wire`]): kept
    /// as they came so that a message's bytes round-trip, and refused by [`check_result`].
    Unrecognized {
        /// The tag sent.
        tag: u8,
        /// The value sent.
        value: i32,
    },
}

impl Default for Outcome {
    /// A job that returned from `_start`.
    fn default() -> Self {
        Self::Exited { code: 0 }
    }
}

impl Outcome {
    /// The outcome's stable tag and value in the output encoding ([`encode_output`]): 0
    /// exited (the exit code), 1 out of fuel, 2 past the deadline, 3 over the memory limit,
    /// 4 output too large, 5 trapped (the trap's code); the value is 0 where none is named.
    pub fn tag(self) -> (u8, i32) {
        match self {
            Self::Exited { code } => (0, code),
            Self::OutOfFuel => (1, 0),
            Self::DeadlineExceeded => (2, 0),
            Self::MemoryLimitExceeded => (3, 0),
            Self::OutputTooLarge => (4, 0),
            Self::Trapped { trap } => (5, trap.code()),
            Self::Unrecognized { tag, value } => (tag, value),
        }
    }

    /// The outcome of a tag and value from [`Outcome::tag`]; `None` for a pair no run gives.
    pub fn from_tag(tag: u8, value: i32) -> Option<Self> {
        let o = match tag {
            0 => Self::Exited { code: value },
            1 => Self::OutOfFuel,
            2 => Self::DeadlineExceeded,
            3 => Self::MemoryLimitExceeded,
            4 => Self::OutputTooLarge,
            5 => Self::Trapped {
                trap: TrapKind::from_code(value)?,
            },
            _ => return None,
        };
        (o.tag() == (tag, value)).then_some(o)
    }

    /// The outcome a peer's tag and value name, [`Outcome::Unrecognized`] for a pair no run
    /// gives: `from_wire(t, v).tag() == (t, v)` for every pair.
    pub fn from_wire(tag: u8, value: i32) -> Self {
        Self::from_tag(tag, value).unwrap_or(Self::Unrecognized { tag, value })
    }

    /// Whether a run can end so ([`Outcome::Unrecognized`] cannot).
    pub fn is_recognized(self) -> bool {
        !matches!(self, Self::Unrecognized { .. })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited { code } => write!(f, "exited with code {code}"),
            Self::OutOfFuel => f.write_str("out of fuel"),
            Self::DeadlineExceeded => f.write_str("past the deadline"),
            Self::MemoryLimitExceeded => f.write_str("over the memory limit"),
            Self::OutputTooLarge => f.write_str("output too large"),
            Self::Trapped { trap } => write!(f, "trapped: {trap}"),
            Self::Unrecognized { tag, value } => write!(f, "unknown outcome ({tag}, {value})"),
        }
    }
}

/// Why a guest trapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrapKind {
    /// Call stack exhausted (deep recursion).
    StackOverflow,
    /// Out-of-bounds memory access.
    MemoryOutOfBounds,
    /// Misaligned atomic access.
    HeapMisaligned,
    /// Out-of-bounds table access.
    TableOutOfBounds,
    /// Indirect call to a null table entry.
    IndirectCallToNull,
    /// Indirect call with the wrong signature.
    BadSignature,
    /// Integer overflow (e.g. `i32.div_s` of `MIN` by -1).
    IntegerOverflow,
    /// Integer division by zero.
    IntegerDivisionByZero,
    /// Float to int conversion out of range or NaN.
    BadConversionToInteger,
    /// `unreachable` executed (e.g. `abort()`).
    Unreachable,
    /// Null reference or another trap the runtime reports.
    Other,
}

impl TrapKind {
    const ALL: [Self; 11] = [
        Self::StackOverflow,
        Self::MemoryOutOfBounds,
        Self::HeapMisaligned,
        Self::TableOutOfBounds,
        Self::IndirectCallToNull,
        Self::BadSignature,
        Self::IntegerOverflow,
        Self::IntegerDivisionByZero,
        Self::BadConversionToInteger,
        Self::Unreachable,
        Self::Other,
    ];

    fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The trap's stable code in the output encoding.
    fn code(self) -> i32 {
        match self {
            Self::StackOverflow => 1,
            Self::MemoryOutOfBounds => 2,
            Self::HeapMisaligned => 3,
            Self::TableOutOfBounds => 4,
            Self::IndirectCallToNull => 5,
            Self::BadSignature => 6,
            Self::IntegerOverflow => 7,
            Self::IntegerDivisionByZero => 8,
            Self::BadConversionToInteger => 9,
            Self::Unreachable => 10,
            Self::Other => 255,
        }
    }
}

impl std::fmt::Display for TrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::StackOverflow => "stack overflow",
            Self::MemoryOutOfBounds => "memory access out of bounds",
            Self::HeapMisaligned => "misaligned memory access",
            Self::TableOutOfBounds => "table access out of bounds",
            Self::IndirectCallToNull => "indirect call to null",
            Self::BadSignature => "indirect call with bad signature",
            Self::IntegerOverflow => "integer overflow",
            Self::IntegerDivisionByZero => "integer division by zero",
            Self::BadConversionToInteger => "invalid conversion to integer",
            Self::Unreachable => "unreachable executed",
            Self::Other => "other trap",
        };
        f.write_str(s)
    }
}

/// What a run produced that its output hash covers: how it ended, its stdout and its
/// `/output` files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outputs {
    /// How the job ended.
    pub outcome: Outcome,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its `/output` files.
    pub files: OutputFiles,
}

impl Outputs {
    /// The output hash a result commitment signs for these outputs ([`output_hash`]).
    pub fn hash(&self) -> B256 {
        B256::from(output_hash(self.outcome, &self.stdout, &self.files))
    }

    /// The larger of stdout's size and the `/output` files' total: each is capped by the
    /// job's output limit on its own (as the sandbox run of a spec does).
    pub fn largest_part(&self) -> u64 {
        let files: u64 = self.files.values().map(|d| d.len() as u64).sum();
        (self.stdout.len() as u64).max(files)
    }
}

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
pub fn encode_output(outcome: Outcome, stdout: &[u8], outputs: &OutputFiles) -> Vec<u8> {
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
    write_output(outcome, stdout, outputs, |bytes| {
        out.extend_from_slice(bytes)
    });
    out
}

/// blake3 of [`encode_output`], streamed (the encoding is never built in memory).
pub fn output_hash(outcome: Outcome, stdout: &[u8], outputs: &OutputFiles) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    write_output(outcome, stdout, outputs, |bytes| {
        h.update(bytes);
    });
    *h.finalize().as_bytes()
}

/// The one writer of the encoding, into whatever `put` does with its pieces.
fn write_output(
    outcome: Outcome,
    stdout: &[u8],
    outputs: &OutputFiles,
    mut put: impl FnMut(&[u8]),
) {
    let (tag, value) = outcome.tag();
    put(OUTPUT_HASH_DOMAIN);
    put(&[tag]);
    put(&value.to_le_bytes());
    put_bytes(&mut put, stdout);
    put(&(outputs.len() as u64).to_le_bytes());
    // BTreeMap<String, _> iterates in byte order of the names.
    for (name, data) in outputs {
        put_bytes(&mut put, name.as_bytes());
        put_bytes(&mut put, data);
    }
}

fn put_bytes(put: &mut impl FnMut(&[u8]), bytes: &[u8]) {
    put(&(bytes.len() as u64).to_le_bytes());
    put(bytes);
}

/// What a signed result must be for: its job and spec, the ticket's channel where the
/// result is a job's own (a spot check's re-run names its own channel), and the account that
/// must have signed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The job.
    pub job_id: B256,
    /// The hash of its spec.
    pub spec_hash: B256,
    /// The channel of the ticket it answers; `None` where any channel will do.
    pub channel_id: Option<B256>,
    /// The EVM account of the provider's offer.
    pub signer: Address,
}

/// Why a signed result is not what it claims to be. Whoever made it is not paid for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidResult {
    /// The result, or its commitment, names another job.
    #[error("the result is for another job")]
    WrongJob,
    /// The commitment names another spec.
    #[error("the result's spec hash is not the job's")]
    WrongSpec,
    /// The commitment is for another channel than the ticket's.
    #[error("the result is signed for another channel's ticket")]
    WrongChannel,
    /// The EIP-712 signature is malformed or by someone else than the offer's account.
    #[error("the result's signature: {0}")]
    Signature(#[from] Eip712Error),
    /// An output's name breaks the file-name rule ([`crate::names`]).
    #[error("the result has an output named \"{}\": {reason}", printable(.name))]
    BadOutputName {
        /// The name, as sent.
        name: String,
        /// The rule it breaks.
        reason: NameError,
    },
    /// The outputs do not hash to the signed output hash, or name an outcome no run gives.
    #[error("the outputs do not hash to the signed output hash")]
    OutputsMismatch,
}

/// The one check of a signed result, made by the buyer on a job's result and by the
/// verifier on every result it compares: [`check_commitment`], then, where `outputs` are
/// given, [`check_outputs`]. Each caller adds its own rules (the buyer its ticket's prices,
/// the verifier its size limit).
pub fn check_result(
    domain: &Domain,
    expected: &Expected,
    commitment: &ResultCommitment,
    signature: &[u8; 65],
    outputs: Option<&Outputs>,
) -> Result<(), InvalidResult> {
    check_commitment(domain, expected, commitment, signature)?;
    match outputs {
        Some(o) => check_outputs(o.outcome, &o.stdout, &o.files, &commitment.output_hash),
        None => Ok(()),
    }
}

/// `commitment` is for the expected job, spec and (where one is expected) channel, and
/// `signature` on it is the expected account's.
pub fn check_commitment(
    domain: &Domain,
    expected: &Expected,
    commitment: &ResultCommitment,
    signature: &[u8; 65],
) -> Result<(), InvalidResult> {
    let c = commitment;
    if c.job_id != expected.job_id {
        return Err(InvalidResult::WrongJob);
    }
    if c.spec_hash != expected.spec_hash {
        return Err(InvalidResult::WrongSpec);
    }
    if expected.channel_id.is_some_and(|ch| ch != c.channel_id) {
        return Err(InvalidResult::WrongChannel);
    }
    c.verify(domain, signature, expected.signer)?;
    Ok(())
}

/// Outputs name their files by the one rule ([`crate::names`]: a provider names files on its
/// buyer's disk), end in an outcome a run gives and hash to `output_hash`.
pub fn check_outputs(
    outcome: Outcome,
    stdout: &[u8],
    files: &OutputFiles,
    output_hash: &B256,
) -> Result<(), InvalidResult> {
    for name in files.keys() {
        check_file_name(name).map_err(|reason| InvalidResult::BadOutputName {
            name: name.clone(),
            reason,
        })?;
    }
    if !outcome.is_recognized() || self::output_hash(outcome, stdout, files) != output_hash.0 {
        return Err(InvalidResult::OutputsMismatch);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
            assert_eq!(Outcome::from_wire(t, v), o);
        }
        assert_eq!(Outcome::from_tag(1, 5), None);
        assert_eq!(Outcome::from_tag(5, 77), None);
        assert_eq!(Outcome::from_tag(9, 0), None);
        // A peer's pair no run gives keeps its bytes, and is not recognized.
        for (t, v) in [(1, 5), (5, 77), (9, 0), (200, -1)] {
            let o = Outcome::from_wire(t, v);
            assert_eq!(o.tag(), (t, v));
            assert!(!o.is_recognized());
        }
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
            let outputs = Outputs { outcome, stdout, files };
            proptest::prop_assert_eq!(outputs.hash().0, output_hash(outcome, &outputs.stdout, &outputs.files));
        }
    }
}
