//! The FNV-1a test guest (a WASI module that prints the 32-bit FNV-1a hash of its stdin as 8
//! hex digits) and the host-side hash the tests check its answers with. The devnet's jobs
//! ([`crate::devnet::guest`]) and the tests' own file-reading guests check with [`fnv1a`]
//! too.

use sietch_market::{BlobRef, JobSpec, Limits, Requirements, VerificationPolicy};

/// FNV-1a's offset basis (32 bits): the hash of no bytes.
pub const OFFSET: u32 = 0x811c_9dc5;
/// FNV-1a's prime (32 bits).
const PRIME: u32 = 0x0100_0193;

/// FNV-1a (32 bits) of `bytes`, carried on from the hash `h` (start from [`OFFSET`]).
pub fn fnv1a_from(h: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u32::from(b)).wrapping_mul(PRIME))
}

/// FNV-1a (32 bits) of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    fnv1a_from(OFFSET, bytes)
}

/// A WASI guest that prints the FNV-1a hash of its stdin as 8 hex digits, after spinning
/// `spin` million iterations (a job that takes a while).
pub fn hash_guest(spin: u32) -> Vec<u8> {
    let wat = format!(
        r#"
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 120) "0123456789abcdef")
  (func (export "_start")
    (local $len i32) (local $h i32) (local $i i32) (local $s i32)
    (block $spun (loop $spin
      (br_if $spun (i32.ge_u (local.get $s) (i32.const {spin})))
      (local.set $s (i32.add (local.get $s) (i32.const 1)))
      (br $spin)))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $len (i32.load (i32.const 8)))
    (local.set $h (i32.const 0x811c9dc5))
    (block $done (loop $bytes
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (local.set $h (i32.mul
        (i32.xor (local.get $h) (i32.load8_u offset=1024 (local.get $i)))
        (i32.const 0x01000193)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $bytes)))
    (local.set $i (i32.const 0))
    (block $hex_done (loop $hex
      (br_if $hex_done (i32.ge_u (local.get $i) (i32.const 8)))
      (i32.store8 offset=100 (local.get $i)
        (i32.load8_u offset=120
          (i32.and
            (i32.shr_u (local.get $h) (i32.sub (i32.const 28) (i32.mul (local.get $i) (i32.const 4))))
            (i32.const 15))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $hex)))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"#,
        spin = u64::from(spin) * 1_000_000
    );
    #[allow(clippy::expect_used)] // the WAT is a constant but for a number
    wat::parse_str(wat).expect("the guest parses")
}

/// What [`hash_guest`] prints for `input`: its FNV-1a as 8 hex digits.
pub fn hex(input: &[u8]) -> String {
    format!("{:08x}", fnv1a(input))
}

/// A job of [`hash_guest`] `module` on `stdin`: 50 million fuel, 1 MiB of memory, 10 s, one
/// CPU core, checked at `sampling_ppm`, for at most `price_cap`, due in ten minutes.
pub fn spec(module: &[u8], stdin: &[u8], sampling_ppm: u32, price_cap: u128) -> JobSpec {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    JobSpec {
        module: BlobRef::of(module).hash,
        args: vec![],
        env: vec![],
        stdin: Some(BlobRef::of(stdin)),
        inputs: vec![],
        limits: Limits {
            fuel: 50_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms: 10_000,
            output_bytes: 1 << 16,
        },
        requirements: Requirements {
            min_cpu_cores: 1,
            ..Requirements::default()
        },
        verification: VerificationPolicy {
            sampling_ppm,
            ..VerificationPolicy::default()
        },
        price_cap,
        deadline: now + 600,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_values() {
        // The published FNV-1a 32-bit test vectors.
        assert_eq!(super::fnv1a(b""), 0x811c_9dc5);
        assert_eq!(super::fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(super::hex(b"foobar"), "bf9cf968");
    }
}
