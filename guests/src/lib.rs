//! Sietch's own job modules, compiled from C by this crate's build script.
//!
//! [`LLM`] is the inference guest (`sandbox/guests/llm`, docs/ai.md): SmolLM2-class llama
//! models in GGUF, prompts in `/input/prompts.jsonl`, completions out in
//! `/output/completions.jsonl`, every large matrix product through the host's
//! `sietch_kernels.matmul`.
//!
//! [`TRAIN`] is the training guest (`sandbox/guests/train`, docs/training.md): a multilayer
//! perceptron's local steps of SGD with momentum or AdamW on `/input/weights.swt` and
//! `/input/shard.sdg`, the weight update out in `/output/update.swt` with `/output/stats.json`;
//! `mode=init` and `mode=eval` make first weights and score them. Pure wasm, no host imports
//! but WASI.
//!
//! [`TRAIN_LM`] is the language-model training guest (`sandbox/guests/train_lm`,
//! docs/training.md "A second model"): a small byte-level transformer's local steps of AdamW
//! on `/input/weights.lmw` and a shard (`from=`, `to=`: byte offsets) of `/input/corpus.txt`,
//! the update out in `/output/update.lmw` with `/output/stats.json`; `mode=init`, `mode=eval`,
//! `mode=grad` (one batch's gradient) and `mode=sample` (greedy text). WASI only.

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

/// The training guest, `train.wasm`.
pub const TRAIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/train.wasm"));

/// The training guest's blob hash (blake3 of its bytes), as a job names its module.
pub fn train_hash() -> [u8; 32] {
    *blake3::hash(TRAIN).as_bytes()
}

/// The name the training guest reads the weights from, in `/input` (format `SWT1`).
pub const WEIGHTS_INPUT: &str = "weights.swt";
/// The name it reads its data shard from, in `/input` (format `SDG1`).
pub const SHARD_INPUT: &str = "shard.sdg";
/// `mode=train` writes the update (new weights minus old, format `SWT1`) to this, in `/output`.
pub const UPDATE_OUTPUT: &str = "update.swt";
/// `mode=train` writes its losses to this, in `/output`.
pub const STATS_OUTPUT: &str = "stats.json";
/// `mode=init` writes the first weights to this, in `/output`.
pub const WEIGHTS_OUTPUT: &str = "weights.swt";
/// `mode=eval` writes loss and accuracy to this, in `/output`.
pub const EVAL_OUTPUT: &str = "eval.json";

/// The language-model training guest, `train_lm.wasm`.
pub const TRAIN_LM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/train_lm.wasm"));

/// The language-model training guest's blob hash (blake3 of its bytes).
pub fn train_lm_hash() -> [u8; 32] {
    *blake3::hash(TRAIN_LM).as_bytes()
}

/// The name the language-model guest reads its weights from, in `/input` (format `LMW1`);
/// `mode=init` writes the first weights to the same name in `/output`.
pub const LM_WEIGHTS: &str = "weights.lmw";
/// The name it reads its text from, in `/input`: bytes, each a token below the vocabulary.
pub const LM_CORPUS_INPUT: &str = "corpus.txt";
/// `mode=train` writes the update (new weights minus old, format `LMW1`) to this, in `/output`.
pub const LM_UPDATE_OUTPUT: &str = "update.lmw";
/// `mode=sample` reads its prompt from this, in `/input`.
pub const LM_PROMPT_INPUT: &str = "prompt.txt";
/// `mode=sample` writes the greedy continuation to this, in `/output`.
pub const LM_SAMPLE_OUTPUT: &str = "sample.txt";

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

    #[test]
    fn the_training_guest_is_a_wasm_module_with_wasi_only() {
        assert_eq!(TRAIN.get(..4), Some(&b"\0asm"[..]));
        let has = |name: &[u8]| TRAIN.windows(name.len()).any(|w| w == name);
        assert!(
            has(b"wasi_snapshot_preview1"),
            "train.wasm does not import WASI"
        );
        assert!(!has(b"sietch_kernels") && !has(b"sietch_gpu"));
        assert!(
            !has(b"random_get"),
            "the training guest must not read the host's randomness"
        );
        assert_ne!(train_hash(), llm_hash());
    }

    #[test]
    fn the_language_model_guest_is_a_wasm_module_with_wasi_only() {
        assert_eq!(TRAIN_LM.get(..4), Some(&b"\0asm"[..]));
        let has = |name: &[u8]| TRAIN_LM.windows(name.len()).any(|w| w == name);
        assert!(has(b"wasi_snapshot_preview1"));
        assert!(!has(b"sietch_kernels") && !has(b"sietch_gpu") && !has(b"random_get"));
        assert_ne!(train_lm_hash(), train_hash());
    }
}
