//! The devnet's job: a small WASI guest, written inline in WAT, that hashes its stdin.

/// Rounds of FNV-1a the guest runs over its input, so that a run burns visible fuel.
const ROUNDS: u32 = 200;

/// Reads up to 4 KiB of stdin, runs 32-bit FNV-1a over it `ROUNDS` times (the hash carried
/// from round to round) and prints `fnv1a=<8 hex digits>\n`.
const WAT: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "fnv1a=")
  (data (i32.const 120) "0123456789abcdef")
  (func (export "_start")
    (local $len i32) (local $h i32) (local $i i32) (local $r i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $len (i32.load (i32.const 8)))
    (local.set $h (i32.const 0x811c9dc5))
    (block $rounds_done (loop $rounds
      (br_if $rounds_done (i32.ge_u (local.get $r) (i32.const 200)))
      (local.set $i (i32.const 0))
      (block $bytes_done (loop $bytes
        (br_if $bytes_done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $h (i32.mul
          (i32.xor (local.get $h) (i32.load8_u offset=1024 (local.get $i)))
          (i32.const 0x01000193)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $bytes)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rounds)))
    (local.set $i (i32.const 0))
    (block $hex_done (loop $hex
      (br_if $hex_done (i32.ge_u (local.get $i) (i32.const 8)))
      (i32.store8 offset=106 (local.get $i)
        (i32.load8_u offset=120
          (i32.and
            (i32.shr_u (local.get $h) (i32.sub (i32.const 28) (i32.mul (local.get $i) (i32.const 4))))
            (i32.const 15))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $hex)))
    (i32.store8 (i32.const 114) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 15))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"#;

/// The guest module's bytes.
pub(super) fn module() -> anyhow::Result<Vec<u8>> {
    Ok(wat::parse_str(WAT)?)
}

/// What the guest prints for `input`, computed on the host to check the provider's answer.
pub(super) fn expected_stdout(input: &[u8]) -> String {
    let input = input.get(..4096).unwrap_or(input);
    let mut h: u32 = 0x811c_9dc5;
    for _ in 0..ROUNDS {
        for b in input {
            h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
    }
    format!("fnv1a={h:08x}\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn wat_parses_and_reference_is_stable() {
        assert!(super::module().is_ok());
        assert_eq!(super::expected_stdout(b"").len(), 15);
    }
}
