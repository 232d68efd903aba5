//! Compile once per module hash: a bounded in-memory map of linked modules and, optionally, a
//! directory of modules serialized by this same engine configuration.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::{Engine, ExternType, Module};

use crate::error::{LoadError, SandboxError};

/// Counters of the module cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Modules compiled by cranelift.
    pub compiles: u64,
    /// Loads answered from memory.
    pub memory_hits: u64,
    /// Loads answered by deserializing from the cache directory.
    pub disk_hits: u64,
    /// Serialized modules that could not be written or read back (the job still ran).
    pub disk_errors: u64,
}

/// Linked modules by hash, and their insertion order for eviction.
type Entries<M> = (HashMap<[u8; 32], M>, VecDeque<[u8; 32]>);

/// The cache of linked modules `M` (the runner's `JobModule`: generic so that the cache does
/// not import the runner that owns it).
pub(crate) struct ModuleCache<M> {
    entries: Mutex<Entries<M>>,
    capacity: usize,
    dir: Option<PathBuf>,
    compiles: AtomicU64,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    disk_errors: AtomicU64,
}

impl<M: Clone> ModuleCache<M> {
    pub(crate) fn new(capacity: usize, dir: Option<PathBuf>) -> Result<Self, SandboxError> {
        if let Some(d) = &dir {
            std::fs::create_dir_all(d).map_err(|source| SandboxError::CacheDir {
                path: d.clone(),
                source,
            })?;
        }
        Ok(Self {
            entries: Mutex::new((HashMap::new(), VecDeque::new())),
            capacity: capacity.max(1),
            dir,
            compiles: AtomicU64::new(0),
            memory_hits: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            disk_errors: AtomicU64::new(0),
        })
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            compiles: self.compiles.load(Ordering::Relaxed),
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            disk_errors: self.disk_errors.load(Ordering::Relaxed),
        }
    }

    /// The linked module for `hash`, from memory, from disk, or compiled from `wasm`; `link`
    /// checks and links a freshly compiled or deserialized module.
    pub(crate) fn get_or_compile(
        &self,
        engine: &Engine,
        hash: [u8; 32],
        wasm: &[u8],
        link: impl FnOnce(&Module) -> Result<M, LoadError>,
    ) -> Result<M, LoadError> {
        if let Some(m) = self.lock().0.get(&hash) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(m.clone());
        }
        let path = self
            .dir
            .as_ref()
            .map(|d| d.join(format!("{}.cwasm", blake3::Hash::from(hash))));
        let from_disk = path.as_deref().filter(|p| p.exists()).and_then(|p| {
            match deserialize_own_cache_file(engine, p) {
                Ok(m) => Some(m),
                Err(_) => {
                    self.disk_errors.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
        });
        let module = match from_disk {
            Some(m) => {
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                m
            }
            None => {
                let m = Module::from_binary(engine, wasm)
                    .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
                self.compiles.fetch_add(1, Ordering::Relaxed);
                if let Some(p) = &path {
                    // Checked before writing, so a refused module never lands on disk.
                    check_imports_exports(&m)?;
                    if write_atomically(p, &m).is_err() {
                        self.disk_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                m
            }
        };
        let linked = link(&module)?;
        let mut guard = self.lock();
        let (map, order) = &mut *guard;
        if map.insert(hash, linked.clone()).is_none() {
            order.push_back(hash);
        }
        while map.len() > self.capacity {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
        Ok(linked)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<M>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts).
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Loads a module this cache serialized earlier.
#[allow(unsafe_code)]
fn deserialize_own_cache_file(engine: &Engine, path: &Path) -> wasmtime::Result<Module> {
    // SAFETY: `Module::deserialize_file` trusts the file to be wasmtime output. The cache
    // directory is this node's own, content-addressed by the blake3 of the source module and
    // written only by `write_atomically` below from `Module::serialize` of an engine with
    // this same configuration (wasmtime additionally checks the engine and version recorded
    // in the file and refuses a mismatch). The operator must keep the directory writable by
    // the node alone; a file planted there by someone else would be run as native code.
    unsafe { Module::deserialize_file(engine, path) }
}

fn write_atomically(path: &Path, module: &Module) -> std::io::Result<()> {
    let bytes = module.serialize().map_err(std::io::Error::other)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Only functions of `wasi_snapshot_preview1`, `sietch_gpu` and `sietch_kernels` that the sandbox offers may be
/// imported, and a command must export `_start: () -> ()` and its `memory`.
pub(crate) fn check_imports_exports(module: &Module) -> Result<(), LoadError> {
    for import in module.imports() {
        let allowed = match (import.module(), import.ty()) {
            (crate::wasi::MODULE, ExternType::Func(_)) => {
                crate::wasi::FUNCTIONS.contains(&import.name())
            }
            (crate::gpu::MODULE, ExternType::Func(_)) => {
                crate::gpu::FUNCTIONS.contains(&import.name())
            }
            (crate::kernels::MODULE, ExternType::Func(_)) => {
                crate::kernels::FUNCTIONS.contains(&import.name())
            }
            _ => false,
        };
        if !allowed {
            return Err(LoadError::ForbiddenImport {
                module: import.module().to_string(),
                name: import.name().to_string(),
            });
        }
    }
    match module.get_export("_start") {
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
        _ => return Err(LoadError::NotCommand("no exported `_start: () -> ()`")),
    }
    match module.get_export("memory") {
        Some(ExternType::Memory(_)) => Ok(()),
        _ => Err(LoadError::NotCommand("no exported `memory`")),
    }
}
