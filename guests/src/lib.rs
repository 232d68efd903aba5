//! Sietch's own job modules, compiled from C by this crate's build script.
//!
//! [`LLM`] is the inference guest (`sandbox/guests/llm`, docs/ai.md): SmolLM2-class llama
//! models in GGUF, prompts in `/input/prompts.jsonl`, completions out in
//! `/output/completions.jsonl`, every large matrix product through the host's
//! `sietch_kernels.matmul`.

/// The inference guest, `llm.wasm`.
pub const LLM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/llm.wasm"));

/// The inference guest's blob hash (blake3 of its bytes), as a job names its module.
pub fn llm_hash() -> [u8; 32] {
    *blake3::hash(LLM).as_bytes()
}

/// The name the inference guest reads its model from, in `/input`.
pub const MODEL_INPUT: &str = "model.gguf";
/// The name it reads its prompts from, in `/input`: one JSON object per line.
pub const PROMPTS_INPUT: &str = "prompts.jsonl";
/// The name it writes its completions to, in `/output`: one JSON object per line.
pub const COMPLETIONS_OUTPUT: &str = "completions.jsonl";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_is_a_wasm_module_that_imports_the_host_kernels() {
        assert_eq!(LLM.get(..4), Some(&b"\0asm"[..]));
        let imports = LLM
            .windows(b"sietch_kernels".len())
            .any(|w| w == b"sietch_kernels");
        assert!(imports, "llm.wasm does not import sietch_kernels");
        assert_eq!(llm_hash(), *blake3::hash(LLM).as_bytes());
    }
}
