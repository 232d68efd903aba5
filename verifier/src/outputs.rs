//! A job's outputs as the verifier compares them in tolerance mode, and their output hash.
//!
//! The hash is the sandbox's output hash v1 (`sandbox/README.md`): blake3 over
//! `"sietch-output-v1" ‖ tag u8 ‖ value i32 ‖ len ‖ stdout ‖ count ‖ (len ‖ name ‖ len ‖ data)*`,
//! integers little-endian, lengths and counts u64, files sorted by name bytes. It is
//! recomputed here so that the verifier can hold outputs to the commitment that signs their
//! hash without linking the sandbox (wasmtime) into every buyer; the integration tests pin
//! that the two agree on real runs.

use std::collections::BTreeMap;

use sietch_market::B256;

/// Domain separator at the start of the encoding (the sandbox's `OUTPUT_HASH_DOMAIN`).
pub const OUTPUT_HASH_DOMAIN: &[u8; 16] = b"sietch-output-v1";

/// How a job ended, as the output hash encodes it: the outcome tag (0 exited, 1 out of fuel,
/// 2 past the deadline, 3 memory limit, 4 output too large, 5 trapped) and its value (the
/// exit code, the trap code, or 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OutcomeCode {
    /// The outcome tag.
    pub tag: u8,
    /// Exit code if exited, trap code if trapped, else 0.
    pub value: i32,
}

impl OutcomeCode {
    /// A job that exited with `code` (returning from `_start` is code 0).
    pub const fn exited(code: i32) -> Self {
        Self {
            tag: 0,
            value: code,
        }
    }
}

/// What a run produced: how it ended, its stdout and its `/output` files by name. Float
/// arrays that a tolerance comparison reads are `/output` files (see
/// [`crate::compare`](mod@crate::compare)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outputs {
    /// How the job ended.
    pub outcome: OutcomeCode,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its `/output` files.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Outputs {
    /// The output hash a result commitment signs for these outputs.
    pub fn hash(&self) -> B256 {
        let mut h = blake3::Hasher::new();
        h.update(OUTPUT_HASH_DOMAIN);
        h.update(&[self.outcome.tag]);
        h.update(&self.outcome.value.to_le_bytes());
        put(&mut h, &self.stdout);
        h.update(&(self.files.len() as u64).to_le_bytes());
        for (name, data) in &self.files {
            put(&mut h, name.as_bytes());
            put(&mut h, data);
        }
        B256::from(*h.finalize().as_bytes())
    }

    /// The larger of stdout's size and the `/output` files' total: each is capped by the
    /// job's output limit on its own (as the node's sandbox run does).
    pub fn largest_part(&self) -> u64 {
        let files: u64 = self.files.values().map(|d| d.len() as u64).sum();
        (self.stdout.len() as u64).max(files)
    }
}

fn put(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}
