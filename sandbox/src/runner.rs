//! The engine, its configuration and the run of one job.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, PoolingAllocationConfig,
    ResourceLimiter, Store, Trap,
};

use crate::cache::{CacheStats, ModuleCache};
use crate::error::{LoadError, RunError, SandboxError};
use crate::gpu::{self, JobGpu};
use crate::host::LimitHit;
use crate::kernels;
use crate::outcome::{JobReport, Outcome, TrapKind, trap_kind};
use crate::spec::{JobSpec, is_flat_name};
use crate::state::JobState;
use crate::wasi::{self, GuestExit, WasiState};
use sietch_market::output_hash;

/// Largest table any job may have (the pooling allocator reserves this many per slot).
pub const MAX_TABLE_ELEMENTS: u32 = 100_000;

/// Most files a spec may put in `/input`.
pub const MAX_INPUT_FILES: usize = 1024;

/// How a [`Sandbox`] is built. The defaults suit a provider node.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Largest module accepted, in bytes.
    pub max_module_bytes: usize,
    /// Largest memory any job may ask for (the pooling allocator reserves slots this big).
    pub max_memory_bytes: u64,
    /// Jobs that may run at once (instance pool size).
    pub max_concurrent_jobs: u32,
    /// Largest WebAssembly stack, in bytes (deep recursion ends in a stack-overflow trap).
    pub max_wasm_stack: usize,
    /// Period of the epoch ticker, the granularity of deadlines.
    pub epoch_tick: Duration,
    /// Compiled modules kept in memory.
    pub memory_cache_entries: usize,
    /// Directory of the serialized module cache; `None` keeps compiled modules in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Most bytes of stdin and `/input` files a spec may carry, all together.
    pub max_input_bytes: usize,
    /// Fuel metering. Turn it off only to measure what it costs: without it jobs cannot be
    /// billed, `Limits::fuel` is ignored and `fuel_used` is 0. A provider keeps it on.
    pub fuel_metering: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            max_module_bytes: 16 << 20,
            max_memory_bytes: 4 << 30,
            max_concurrent_jobs: 32,
            max_wasm_stack: 512 << 10,
            epoch_tick: Duration::from_millis(5),
            memory_cache_entries: 256,
            cache_dir: None,
            max_input_bytes: 1 << 30,
            fuel_metering: true,
        }
    }
}

/// A module checked, compiled and linked by a [`Sandbox`], ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct JobModule {
    pub(crate) hash: [u8; 32],
    pub(crate) pre: Arc<InstancePre<JobState>>,
    pub(crate) engine_id: usize,
}

impl JobModule {
    /// blake3 of the module's bytes: its identity in the cache and in the market.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
}

impl std::fmt::Debug for JobModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobModule")
            .field("hash", &blake3::Hash::from(self.hash))
            .finish()
    }
}

/// One thread per engine that advances the epoch; stopped and joined on drop.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: &Engine, tick: Duration) -> Result<Self, SandboxError> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sietch-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(SandboxError::Ticker)?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The job runner: one wasmtime engine with the deterministic configuration, the WASI and
/// GPU host functions, the module cache and the epoch ticker. `Sync`: run jobs from as many
/// threads as [`SandboxConfig::max_concurrent_jobs`].
pub struct Sandbox {
    engine: Engine,
    linker: Linker<JobState>,
    cache: ModuleCache<JobModule>,
    config: SandboxConfig,
    /// Unique per sandbox in this process: a module is only run by the sandbox that linked it.
    id: usize,
    // Declared last: dropped after the engine users above.
    _ticker: Ticker,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .finish()
    }
}

/// The engine configuration every provider must share: it is part of what makes fuel counts
/// and results identical across nodes.
fn engine_config(config: &SandboxConfig) -> Result<Config, SandboxError> {
    let max_memory = usize::try_from(config.max_memory_bytes)
        .map_err(|_| SandboxError::Config("max_memory_bytes does not fit in usize".into()))?;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(config.max_concurrent_jobs)
        .total_memories(config.max_concurrent_jobs)
        .total_tables(config.max_concurrent_jobs)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .max_memory_size(max_memory)
        .table_elements(MAX_TABLE_ELEMENTS as usize);
    let mut c = Config::new();
    c.consume_fuel(config.fuel_metering)
        .epoch_interruption(true)
        .cranelift_nan_canonicalization(true)
        .relaxed_simd_deterministic(true)
        .wasm_relaxed_simd(true)
        .wasm_multi_memory(false)
        .wasm_memory64(false)
        .max_wasm_stack(config.max_wasm_stack)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(c)
}

impl Sandbox {
    /// Builds the engine, registers the host functions, and starts the epoch ticker.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        if config.max_concurrent_jobs == 0 || config.epoch_tick.is_zero() {
            return Err(SandboxError::Config(
                "max_concurrent_jobs and epoch_tick must be positive".into(),
            ));
        }
        let engine = Engine::new(&engine_config(&config)?)
            .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        gpu::add_to_linker(&mut linker).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        kernels::add_to_linker(&mut linker).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let cache = ModuleCache::new(config.memory_cache_entries, config.cache_dir.clone())?;
        let ticker = Ticker::start(&engine, config.epoch_tick)?;
        static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            engine,
            linker,
            cache,
            config,
            id,
            _ticker: ticker,
        })
    }

    /// The configuration this sandbox was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Counters of the module cache (compiles, hits).
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    fn id(&self) -> usize {
        self.id
    }

    /// Checks a module (size, magic, imports, `_start`) and compiles it, or takes it from the
    /// cache. Refusals are typed and happen before anything runs.
    pub fn load(&self, wasm: &[u8]) -> Result<JobModule, LoadError> {
        if wasm.len() > self.config.max_module_bytes {
            return Err(LoadError::TooLarge {
                size: wasm.len(),
                limit: self.config.max_module_bytes,
            });
        }
        match wasm.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {}
            Some([0, b'a', b's', b'm', ..]) => {
                return Err(LoadError::NotWasm("a component or unknown version"));
            }
            _ => return Err(LoadError::NotWasm("no \\0asm magic")),
        }
        let hash = *blake3::hash(wasm).as_bytes();
        self.cache
            .get_or_compile(&self.engine, hash, wasm, |module| {
                crate::cache::check_imports_exports(module)?;
                let pre = self.linker.instantiate_pre(module).map_err(|e| {
                    let detail = format!("{e:#}");
                    let (m, n) = module
                        .imports()
                        .find(|i| detail.contains(i.name()))
                        .map(|i| (i.module().to_string(), i.name().to_string()))
                        .unwrap_or_default();
                    LoadError::ImportType {
                        module: m,
                        name: n,
                        detail,
                    }
                })?;
                Ok(JobModule {
                    hash,
                    pre: Arc::new(pre),
                    engine_id: self.id(),
                })
            })
    }

    /// Runs a loaded module. Every ending of the job is an [`Outcome`] in the report; an
    /// `Err` means the job did not run (bad spec, sandbox busy).
    pub fn run(&self, module: &JobModule, spec: &JobSpec) -> Result<JobReport, RunError> {
        let started = Instant::now();
        let mut store = self.store(module, spec)?;
        let limits = &spec.limits;
        let result = self.run_in(module, &mut store)?;
        let outcome = match result {
            Ok(()) => Outcome::Exited { code: 0 },
            Err(e) => classify(&e),
        };
        let fuel_left = store.get_fuel().unwrap_or(limits.fuel);
        let gpu_time_ns = store.data_mut().gpu.finish();
        let state = store.into_data();
        let wasi = state.wasi;
        Ok(JobReport {
            outcome,
            fuel_used: limits.fuel.saturating_sub(fuel_left),
            output_hash: output_hash(outcome, &wasi.stdout, &wasi.outputs),
            stdout: wasi.stdout,
            stderr: wasi.stderr,
            outputs: wasi.outputs,
            gpu_time_ns,
            wall_time: started.elapsed(),
        })
    }

    /// Instantiates a job without running `_start`, for the benchmarks of instantiation.
    #[doc(hidden)]
    pub fn instantiate_only(&self, module: &JobModule, spec: &JobSpec) -> Result<(), RunError> {
        let mut store = self.store(module, spec)?;
        module
            .pre
            .instantiate(&mut store)
            .map(drop)
            .map_err(|e| RunError::Busy(format!("{e:#}")))
    }

    /// A store for one job, with its limits, fuel and deadline set.
    fn store(&self, module: &JobModule, spec: &JobSpec) -> Result<Store<JobState>, RunError> {
        if module.engine_id != self.id() {
            return Err(RunError::ForeignModule);
        }
        self.check_spec(spec)?;
        let limits = &spec.limits;
        let state = JobState {
            memory: None,
            wasi: WasiState::new(spec),
            gpu: JobGpu::new(limits.gpu_memory_bytes, limits.gpu),
            memory_limit: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            table_limit: limits.table_elements as usize,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        if self.config.fuel_metering {
            store
                .set_fuel(limits.fuel)
                .map_err(|e| RunError::InvalidSpec(format!("fuel: {e}")))?;
        }
        let tick = self.config.epoch_tick.as_nanos().max(1);
        let ticks = limits.deadline.as_nanos().div_ceil(tick).saturating_add(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        Ok(store)
    }

    /// Instantiates and runs `_start`; see [`Sandbox::run`].
    fn run_in(
        &self,
        module: &JobModule,
        store: &mut Store<JobState>,
    ) -> Result<wasmtime::Result<()>, RunError> {
        Ok(match module.pre.instantiate(&mut *store) {
            Ok(instance) => {
                store.data_mut().memory = instance.get_memory(&mut *store, "memory");
                match instance.get_typed_func::<(), ()>(&mut *store, "_start") {
                    Ok(start) => start.call(&mut *store, ()),
                    Err(e) => Err(e),
                }
            }
            Err(e) if is_job_ending(&e) => Err(e),
            Err(e) => return Err(RunError::Busy(format!("{e:#}"))),
        })
    }

    fn check_spec(&self, spec: &JobSpec) -> Result<(), RunError> {
        let l = &spec.limits;
        if l.memory_bytes > self.config.max_memory_bytes {
            return Err(RunError::InvalidSpec(format!(
                "memory limit {} is over this sandbox's maximum {}",
                l.memory_bytes, self.config.max_memory_bytes
            )));
        }
        if l.table_elements > 100_000 {
            return Err(RunError::InvalidSpec(
                "table limit over 100000 elements".into(),
            ));
        }
        let input_bytes = spec.inputs.total_bytes().saturating_add(spec.stdin.len());
        if input_bytes > self.config.max_input_bytes || spec.inputs.len() > MAX_INPUT_FILES {
            return Err(RunError::InvalidSpec(format!(
                "{input_bytes} bytes in {} inputs, over this sandbox's {} bytes or {MAX_INPUT_FILES} files",
                spec.inputs.len(),
                self.config.max_input_bytes
            )));
        }
        if let Some(bad) = spec.inputs.keys().find(|n| !is_flat_name(n)) {
            return Err(RunError::InvalidSpec(format!(
                "input name {bad:?} is not a flat name"
            )));
        }
        let strings = spec
            .args
            .iter()
            .chain(spec.env.iter().flat_map(|(k, v)| [k, v]));
        if strings.clone().any(|s| s.contains('\0'))
            || spec.env.iter().any(|(k, _)| k.contains('='))
        {
            return Err(RunError::InvalidSpec(
                "argument or environment contains NUL or `=` in a name".into(),
            ));
        }
        if strings.map(|s| s.len() + 1).sum::<usize>() > 1 << 20 {
            return Err(RunError::InvalidSpec(
                "arguments and environment over 1 MiB".into(),
            ));
        }
        Ok(())
    }
}

fn find<T: std::error::Error + Send + Sync + 'static>(e: &wasmtime::Error) -> Option<&T> {
    e.chain().find_map(|c| c.downcast_ref::<T>())
}

fn is_job_ending(e: &wasmtime::Error) -> bool {
    find::<Trap>(e).is_some() || find::<LimitHit>(e).is_some() || find::<GuestExit>(e).is_some()
}

fn classify(e: &wasmtime::Error) -> Outcome {
    if let Some(GuestExit(code)) = find::<GuestExit>(e) {
        return Outcome::Exited { code: *code };
    }
    match find::<LimitHit>(e) {
        Some(LimitHit::Memory) => return Outcome::MemoryLimitExceeded,
        Some(LimitHit::Output) => return Outcome::OutputTooLarge,
        None => {}
    }
    match find::<Trap>(e) {
        Some(Trap::OutOfFuel) => Outcome::OutOfFuel,
        Some(Trap::Interrupt) => Outcome::DeadlineExceeded,
        Some(t) => Outcome::Trapped {
            trap: trap_kind(*t),
        },
        None => Outcome::Trapped {
            trap: TrapKind::Other,
        },
    }
}
