//! What a buyer asks to run: the inputs of a job and the limits it runs under.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The limits a job runs under. Every one is enforced by the sandbox and reaching it ends the
/// job with an [`crate::Outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel the job may burn (the billing unit: roughly one per WebAssembly instruction, plus
    /// a charge per host call and per byte a host call moves).
    pub fuel: u64,
    /// Largest linear memory, in bytes.
    pub memory_bytes: u64,
    /// Largest table, in elements.
    pub table_elements: u32,
    /// Wall-clock deadline, measured with epochs (granularity: the sandbox's epoch tick).
    pub deadline: Duration,
    /// Most bytes the job may write to stdout; more ends it with `OutputTooLarge`.
    pub stdout_bytes: usize,
    /// Most bytes of stderr kept; the rest is dropped (stderr is diagnostics, not output).
    pub stderr_bytes: usize,
    /// Most bytes the job may hold in `/output` files, all together.
    pub output_bytes: usize,
    /// Most files the job may create in `/output`.
    pub output_files: usize,
    /// GPU memory the job may allocate through `sietch_gpu`, in bytes.
    pub gpu_memory_bytes: u64,
    /// Whether the job may use the GPU. When `false` every `sietch_gpu` call answers "no
    /// device", as on a node without one, so that a job that did not ask for a GPU runs the
    /// same everywhere (a provider with a GPU and a verifier without one agree).
    pub gpu: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 10_000_000_000,
            memory_bytes: 256 << 20,
            table_elements: 100_000,
            deadline: Duration::from_secs(60),
            stdout_bytes: 16 << 20,
            stderr_bytes: 1 << 20,
            output_bytes: 64 << 20,
            output_files: 64,
            gpu_memory_bytes: 1 << 30,
            gpu: true,
        }
    }
}

/// Everything a job sees. Two runs of the same module with equal specs give the same output
/// hash and the same fuel (unless the deadline is what ends them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSpec {
    /// Seeds `random_get`; in the market it is the job's id.
    pub job_id: [u8; 32],
    /// Arguments after the program name (the guest sees `argv[0] == "job"`).
    pub args: Vec<String>,
    /// Environment variables, in the order given.
    pub env: Vec<(String, String)>,
    /// What the guest reads from fd 0.
    pub stdin: Vec<u8>,
    /// Files of the read-only `/input` directory, by name (flat: no `/` in names), shared:
    /// a job holds its inputs by reference, so jobs given the same file share one copy.
    pub inputs: Inputs,
    /// The limits.
    pub limits: Limits,
}

/// The files of a job's `/input` directory, by name. Each file is an `Arc<[u8]>`: cloning a
/// spec, starting a job (its WASI state) or running many jobs on one model copies no bytes,
/// and `sietch_kernels` reads a model's weights straight from this one shared buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs(BTreeMap<String, Arc<[u8]>>);

impl Inputs {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file; returns the file it replaced. Pass an `Arc<[u8]>` to share
    /// a buffer already held elsewhere, or a `Vec<u8>` to hand one over.
    pub fn insert(&mut self, name: String, data: impl Into<Arc<[u8]>>) -> Option<Arc<[u8]>> {
        self.0.insert(name, data.into())
    }

    /// The file named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<[u8]>> {
        self.0.get(name)
    }

    /// Whether a file is named `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// How many files.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    /// The files' contents, in order of name.
    pub fn values(&self) -> impl Iterator<Item = &Arc<[u8]>> {
        self.0.values()
    }

    /// Names and contents, in order of name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Arc<[u8]>)> {
        self.0.iter()
    }

    /// Bytes in all files together.
    pub fn total_bytes(&self) -> usize {
        self.0
            .values()
            .map(|d| d.len())
            .fold(0, usize::saturating_add)
    }
}

impl<V: Into<Arc<[u8]>>> FromIterator<(String, V)> for Inputs {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k, v.into())).collect())
    }
}

impl<V: Into<Arc<[u8]>>> From<BTreeMap<String, V>> for Inputs {
    fn from(map: BTreeMap<String, V>) -> Self {
        map.into_iter().collect()
    }
}

/// A name that may appear in `/input` or `/output`: the protocol's one rule
/// ([`sietch_market::check_file_name`]: flat, at most 255 bytes, printable), so a provider's
/// sandbox never creates an output that a buyer would refuse.
pub(crate) fn is_flat_name(name: &str) -> bool {
    sietch_market::check_file_name(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_shared_not_copied() {
        let model: Arc<[u8]> = vec![7u8; 1 << 20].into();
        let mut spec = JobSpec::default();
        spec.inputs.insert("model.gguf".into(), model.clone());
        spec.inputs.insert("prompts".into(), b"hi".to_vec());
        let copy = spec.clone();
        let held = copy.inputs.get("model.gguf").unwrap();
        assert!(Arc::ptr_eq(held, &model));
        // A job's WASI state holds the same buffer too.
        let state = crate::wasi::WasiState::new(&copy);
        let data = state.input_bytes("model.gguf").unwrap();
        assert!(std::ptr::eq(data.as_ptr(), model.as_ptr()));
        assert_eq!(spec.inputs.total_bytes(), (1 << 20) + 2);
        assert_eq!(
            spec.inputs.keys().collect::<Vec<_>>(),
            ["model.gguf", "prompts"]
        );
        let from_map: Inputs = BTreeMap::from([("a".to_string(), vec![1u8])]).into();
        assert_eq!(from_map.get("a").map(|d| &d[..]), Some(&[1u8][..]));
    }
}
