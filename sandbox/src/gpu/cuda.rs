//! The CUDA side of `sietch_gpu`, on cudarc with the driver and NVRTC loaded at run time.
//! This is the only module of the crate allowed `unsafe` (besides the one cache loader), and
//! each block says why it is sound.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream, DriverError,
    LaunchConfig, PushKernelArg, sys,
};

use super::{GpuError, HandleTable, KernelArg, LaunchShape};

/// Kernels compiled or loaded, by blake3 of (kind, source): NVRTC runs once per source.
const KERNEL_CACHE_ENTRIES: usize = 256;
/// Launches whose events are kept before the stream is drained to read them.
const MAX_PENDING_TIMINGS: usize = 1024;

/// The process-wide device: one context for the node's lifetime (contexts cost ~100 ms).
/// Only device 0 is used for now.
struct Device {
    ctx: Arc<CudaContext>,
    count: i32,
    total_memory: u64,
}

fn device() -> Result<&'static Device, GpuError> {
    probe().as_ref().map_err(|_| GpuError::NoDevice)
}

/// Why device 0 cannot be used: the step of bringing it up that failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unavailable {
    /// The driver library is not installed (or not where dlopen looks).
    #[error("the CUDA driver library (libcuda.so) was not found by dlopen")]
    NoDriverLibrary,
    /// The driver did not initialise or count its devices.
    #[error("cuInit/cuDeviceGetCount failed: {0:?}")]
    Init(DriverError),
    /// The driver sees no device.
    #[error("the driver reports {0} CUDA devices")]
    NoDevices(i32),
    /// Device 0 gave no context.
    #[error("no context on device 0: {0:?}")]
    Context(DriverError),
    /// Device 0's memory could not be read.
    #[error("cuDeviceTotalMem failed: {0:?}")]
    TotalMemory(DriverError),
}

/// The device, or why there is none (kept, so that a GPU machine whose driver does not load
/// says which step failed).
fn probe() -> &'static Result<Device, Unavailable> {
    static DEVICE: OnceLock<Result<Device, Unavailable>> = OnceLock::new();
    DEVICE.get_or_init(|| {
        // SAFETY: only tries to dlopen libcuda by its usual names; with the
        // `dynamic-loading` feature every other driver call panics when the library is
        // absent, so this check must come first and gates all of them.
        if !unsafe { sys::is_culib_present() } {
            return Err(Unavailable::NoDriverLibrary);
        }
        let count = CudaContext::device_count().map_err(Unavailable::Init)?;
        if count <= 0 {
            return Err(Unavailable::NoDevices(count));
        }
        let ctx = CudaContext::new(0).map_err(Unavailable::Context)?;
        let total_memory = ctx.total_mem().map_err(Unavailable::TotalMemory)? as u64;
        Ok(Device {
            ctx,
            count,
            total_memory,
        })
    })
}

/// Why device 0 cannot be used, or `None` where it can.
pub(super) fn unavailable_reason() -> Option<&'static Unavailable> {
    probe().as_ref().err()
}

pub(super) fn device_count() -> Result<i32, GpuError> {
    device().map(|d| d.count)
}

pub(super) fn total_memory() -> Result<u64, GpuError> {
    device().map(|d| d.total_memory)
}

pub(super) fn device_info() -> Result<super::DeviceInfo, GpuError> {
    let dev = device()?;
    let (major, minor) = dev.ctx.compute_capability().map_err(driver)?;
    let module = std::fs::read_to_string("/sys/module/nvidia/version")
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let version = module.unwrap_or_else(|| {
        let mut v: std::ffi::c_int = 0;
        // SAFETY: `device()` succeeded, so the driver library is loaded; the call writes one
        // int through a pointer to a live local.
        let ok = unsafe { sys::cuDriverGetVersion(&mut v) } == sys::CUresult::CUDA_SUCCESS;
        if ok {
            format!("cuda {}.{}", v / 1000, (v % 1000) / 10)
        } else {
            "unknown".to_owned()
        }
    });
    Ok(super::DeviceInfo {
        model: dev.ctx.name().map_err(driver)?,
        memory_bytes: dev.total_memory,
        compute_capability: (
            u8::try_from(major).unwrap_or(u8::MAX),
            u8::try_from(minor).unwrap_or(u8::MAX),
        ),
        driver: version,
        // SAFETY: only probes for libnvrtc by its usual names, as `load_kernel` does.
        nvrtc: unsafe { cudarc::nvrtc::sys::is_culib_present() },
    })
}

fn driver(e: impl std::fmt::Debug) -> GpuError {
    GpuError::Driver(format!("{e:?}"))
}

/// A job's device buffer.
pub(crate) struct Buffer(CudaSlice<u8>);

impl Buffer {
    pub(super) fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

/// A loaded kernel (its module is kept alive by the kernel cache and the function).
pub(crate) struct Kernel {
    function: CudaFunction,
    _module: Arc<CudaModule>,
}

/// What kind of source a kernel comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum SourceKind {
    Ptx,
    CudaC,
}

pub(super) fn load_kernel(kind: SourceKind, source: &str, name: &str) -> Result<Kernel, GpuError> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], Arc<CudaModule>>>> = OnceLock::new();
    let dev = device()?;
    let mut h = blake3::Hasher::new();
    h.update(&[kind as u8]);
    h.update(source.as_bytes());
    let key = *h.finalize().as_bytes();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let cached = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned();
    let module = match cached {
        Some(m) => m,
        None => {
            let ptx = match kind {
                SourceKind::Ptx => cudarc::nvrtc::Ptx::from_src(source),
                SourceKind::CudaC => {
                    // SAFETY: as for the driver: only probes for libnvrtc before any call.
                    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                        return Err(GpuError::Kernel("NVRTC is not installed".into()));
                    }
                    cudarc::nvrtc::compile_ptx(source)
                        .map_err(|e| GpuError::Kernel(format!("{e:?}")))?
                }
            };
            let m = dev
                .ctx
                .load_module(ptx)
                .map_err(|e| GpuError::Kernel(format!("{e:?}")))?;
            let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= KERNEL_CACHE_ENTRIES {
                map.clear();
            }
            map.insert(key, m.clone());
            m
        }
    };
    let function = module
        .load_function(name)
        .map_err(|e| GpuError::Kernel(format!("{e:?}")))?;
    Ok(Kernel {
        function,
        _module: module,
    })
}

/// A job's own stream and the events that time its launches.
pub(crate) struct JobStream {
    stream: Arc<CudaStream>,
    pending: Vec<(CudaEvent, CudaEvent)>,
    gpu_ns: u64,
}

impl JobStream {
    pub(super) fn new() -> Result<Self, GpuError> {
        let stream = device()?.ctx.new_stream().map_err(driver)?;
        Ok(Self {
            stream,
            pending: Vec::new(),
            gpu_ns: 0,
        })
    }

    pub(super) fn alloc(&mut self, bytes: u64) -> Result<Buffer, GpuError> {
        let n = usize::try_from(bytes).map_err(|_| GpuError::QuotaExceeded)?;
        self.stream.alloc_zeros::<u8>(n).map(Buffer).map_err(driver)
    }

    pub(super) fn upload(
        &mut self,
        buf: &mut Buffer,
        range: std::ops::Range<usize>,
        data: &[u8],
    ) -> Result<(), GpuError> {
        let mut view = buf.0.slice_mut(range);
        self.stream.memcpy_htod(data, &mut view).map_err(driver)
    }

    pub(super) fn download(
        &mut self,
        buf: &Buffer,
        range: std::ops::Range<usize>,
        out: &mut [u8],
    ) -> Result<(), GpuError> {
        let view = buf.0.slice(range);
        self.stream.memcpy_dtoh(&view, out).map_err(driver)?;
        // The guest reads the bytes right after the call returns.
        self.stream.synchronize().map_err(driver)
    }

    pub(super) fn launch(
        &mut self,
        kernel: &Kernel,
        shape: LaunchShape,
        args: &[KernelArg],
        buffers: &HandleTable<Buffer>,
    ) -> Result<(), GpuError> {
        if self.pending.len() >= MAX_PENDING_TIMINGS {
            self.synchronize()?;
        }
        let mut slices = Vec::with_capacity(args.len());
        for a in args {
            if let KernelArg::Buffer(h) = a {
                slices.push(&buffers.get(*h)?.0);
            }
        }
        let mut builder = self.stream.launch_builder(&kernel.function);
        let mut next_slice = slices.iter();
        for a in args {
            match a {
                KernelArg::Buffer(_) => {
                    if let Some(s) = next_slice.next() {
                        builder.arg(*s);
                    }
                }
                KernelArg::I32(v) => {
                    builder.arg(v);
                }
                KernelArg::U32(v) => {
                    builder.arg(v);
                }
                KernelArg::F32(v) => {
                    builder.arg(v);
                }
                KernelArg::I64(v) => {
                    builder.arg(v);
                }
                KernelArg::U64(v) => {
                    builder.arg(v);
                }
                KernelArg::F64(v) => {
                    builder.arg(v);
                }
            }
        }
        let cfg = LaunchConfig {
            grid_dim: (shape.grid[0], shape.grid[1], shape.grid[2]),
            block_dim: (shape.block[0], shape.block[1], shape.block[2]),
            shared_mem_bytes: shape.shared_bytes,
        };
        let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = self.stream.record_event(timing).map_err(driver)?;
        // SAFETY: the shape was validated and every buffer argument is a live allocation of
        // this job, so nothing of the host process is at stake. What cannot be checked is
        // that the arguments match the kernel's parameters or that the kernel stays inside
        // its buffers: device memory of other jobs sharing this context is reachable by a
        // hostile kernel, and a faulting kernel poisons the context (see sandbox/README.md).
        unsafe { builder.launch(cfg) }.map_err(driver)?;
        let end = self.stream.record_event(timing).map_err(driver)?;
        self.pending.push((start, end));
        Ok(())
    }

    pub(super) fn synchronize(&mut self) -> Result<(), GpuError> {
        self.stream.synchronize().map_err(driver)?;
        for (start, end) in self.pending.drain(..) {
            let ms = start.elapsed_ms(&end).map_err(driver)?;
            self.gpu_ns = self.gpu_ns.saturating_add((f64::from(ms) * 1e6) as u64);
        }
        Ok(())
    }

    /// Drains the stream and returns the GPU time of every launch.
    pub(super) fn finish(&mut self) -> u64 {
        let _ = self.synchronize();
        self.gpu_ns
    }
}

/// The GPU benchmark's baseline: [`super::BENCH_KERNEL`] launched `launches` times directly
/// through cudarc, on a stream of its own, over a zeroed buffer of `n` floats; the wall time
/// from before the first launch to the end of the final synchronize. The kernel is loaded
/// through the same module cache as a job's, so both sides run the same compiled code.
pub(super) fn direct_launches(
    shape: LaunchShape,
    n: u32,
    iters: i32,
    launches: u32,
) -> Result<std::time::Duration, GpuError> {
    shape.validate()?;
    let kernel = load_kernel(
        SourceKind::CudaC,
        super::BENCH_KERNEL,
        super::BENCH_KERNEL_NAME,
    )?;
    let stream = device()?.ctx.new_stream().map_err(driver)?;
    let words = usize::try_from(n).map_err(|_| GpuError::InvalidArgument("n"))?;
    let buf = stream.alloc_zeros::<f32>(words).map_err(driver)?;
    let n_arg = i32::try_from(n).map_err(|_| GpuError::InvalidArgument("n"))?;
    let cfg = LaunchConfig {
        grid_dim: (shape.grid[0], shape.grid[1], shape.grid[2]),
        block_dim: (shape.block[0], shape.block[1], shape.block[2]),
        shared_mem_bytes: shape.shared_bytes,
    };
    stream.synchronize().map_err(driver)?;
    let t = std::time::Instant::now();
    for _ in 0..launches {
        let mut builder = stream.launch_builder(&kernel.function);
        builder.arg(&buf);
        builder.arg(&n_arg);
        builder.arg(&iters);
        // SAFETY: the kernel is the crate's own `BENCH_KERNEL`, whose parameters are
        // `(float *x, int n, int iters)`, matching the three arguments pushed above, and which
        // touches only `x[0..n)`; `buf` is a live allocation of `n` floats on this context.
        unsafe { builder.launch(cfg) }.map_err(driver)?;
    }
    stream.synchronize().map_err(driver)?;
    Ok(t.elapsed())
}
