//! Errors of the host: a module refused before it runs, a spec the sandbox cannot honour, or
//! a sandbox that cannot start. How a job *ends* is never an error: see [`crate::Outcome`].

use thiserror::Error;

/// Why a module was refused before anything ran.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The module is larger than [`crate::SandboxConfig::max_module_bytes`].
    #[error("module is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Size of the module offered.
        size: usize,
        /// The sandbox's limit.
        limit: usize,
    },
    /// The bytes are not a WebAssembly core module (wrong magic or version; components are
    /// not accepted).
    #[error("not a WebAssembly core module: {0}")]
    NotWasm(&'static str),
    /// The bytes look like WebAssembly but do not validate or compile.
    #[error("invalid WebAssembly module: {0}")]
    Invalid(String),
    /// The module imports something the sandbox does not offer. Jobs may import only the
    /// functions of `wasi_snapshot_preview1` listed in [`crate::wasi::FUNCTIONS`], of
    /// `sietch_gpu` listed in [`crate::gpu::FUNCTIONS`] and of `sietch_kernels` listed in
    /// [`crate::kernels::FUNCTIONS`].
    #[error("import `{module}::{name}` is not allowed in the sandbox")]
    ForbiddenImport {
        /// The import's module name.
        module: String,
        /// The import's field name.
        name: String,
    },
    /// An allowed function is imported with the wrong signature.
    #[error("import `{module}::{name}` has the wrong type: {detail}")]
    ImportType {
        /// The import's module name.
        module: String,
        /// The import's field name.
        name: String,
        /// What wasmtime reported.
        detail: String,
    },
    /// The module is not a WASI command: it lacks `_start: () -> ()` or an exported `memory`.
    #[error("module is not a WASI command: {0}")]
    NotCommand(&'static str),
}

/// Why the sandbox could not run a job at all (the job did not start; nothing is billed).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RunError {
    /// The spec asks for more than this sandbox allows, or is malformed.
    #[error("invalid job spec: {0}")]
    InvalidSpec(String),
    /// The sandbox is at its concurrency limit (instance pool exhausted); retry later.
    #[error("sandbox is busy: {0}")]
    Busy(String),
    /// The module was loaded by a different [`crate::Sandbox`].
    #[error("module was loaded by another sandbox")]
    ForeignModule,
}

/// Why a [`crate::Sandbox`] could not be created.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The configuration is inconsistent.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    /// wasmtime refused the engine configuration.
    #[error("wasmtime engine: {0}")]
    Engine(String),
    /// The module cache directory could not be created.
    #[error("module cache directory {path}: {source}")]
    CacheDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The epoch ticker thread could not be spawned.
    #[error("spawning the epoch ticker: {0}")]
    Ticker(std::io::Error),
}
