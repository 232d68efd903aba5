//! The `sietch_gpu` host module: metered, validated access to a CUDA device for WebAssembly
//! jobs, implemented with cudarc loaded at run time (no CUDA needed to build or run).
//!
//! Guest ABI (every function returns `i32`: 0 or a count on success, a negative
//! [`GpuError::code`] on failure; pointers are into the guest's memory):
//!
//! | function | parameters |
//! |---|---|
//! | `device_count` | — (number of devices, or `NO_DEVICE`) |
//! | `device_query` | `out`: 24 bytes `{u32 devices, u32 0, u64 total_memory, u64 quota_left}` |
//! | `alloc` | `bytes: i64, out_handle: i32` |
//! | `free` | `handle: i32` |
//! | `upload` | `handle: i32, offset: i64, src: i32, len: i32` |
//! | `download` | `handle: i32, offset: i64, dst: i32, len: i32` |
//! | `load_kernel` | `kind: i32 (0 PTX, 1 CUDA C), src, src_len, name, name_len, out_kernel: i32` |
//! | `launch` | `kernel, grid: i32 (3×u32), block: i32 (3×u32), shared_bytes, args, nargs: i32` |
//! | `synchronize` | — |
//!
//! Launch arguments are `nargs` records of 16 bytes `{u32 tag, u32 0, u64 value}` with tags
//! [`ArgTag`]. Handles are per job: a job can only name buffers it allocated itself, and a
//! freed handle is never valid again (generations). Allocations count against
//! `Limits::gpu_memory_bytes`.

mod cuda;

use wasmtime::{Caller, Linker};

use crate::host::{self, Host, charge};

/// The module name guests import from.
pub const MODULE: &str = "sietch_gpu";

/// The functions of `sietch_gpu`.
pub const FUNCTIONS: &[&str] = &[
    "device_count",
    "device_query",
    "alloc",
    "free",
    "upload",
    "download",
    "load_kernel",
    "launch",
    "synchronize",
];

/// Fuel charged per `sietch_gpu` call (GPU time is billed separately, from CUDA events).
pub const GPU_CALL_FUEL: u64 = 1_000;

/// Most buffers or kernels a job may hold at once.
pub const MAX_HANDLES: usize = 4096;
/// Most arguments of one launch.
pub const MAX_ARGS: usize = 32;
/// Largest block (threads) of a launch.
pub const MAX_BLOCK_THREADS: u64 = 1024;
/// Largest dynamic shared memory of a launch.
pub const MAX_SHARED_BYTES: u32 = 48 << 10;
/// Largest kernel source.
pub const MAX_KERNEL_SOURCE: usize = 1 << 20;

/// Why a `sietch_gpu` call failed; the guest sees [`GpuError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// No CUDA driver or no device on this node.
    #[error("no device")]
    NoDevice,
    /// The handle is not one of this job's live buffers or kernels.
    #[error("bad handle")]
    BadHandle,
    /// The allocation would exceed the job's GPU memory quota.
    #[error("GPU memory quota exceeded")]
    QuotaExceeded,
    /// A copy reaches outside the buffer, or a guest pointer outside guest memory.
    #[error("out of bounds")]
    OutOfBounds,
    /// A launch configuration, argument list or kernel kind is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// Too many live handles.
    #[error("too many handles")]
    TooManyHandles,
    /// NVRTC or the driver refused the kernel.
    #[error("kernel failed to load: {0}")]
    Kernel(String),
    /// The driver reported an error.
    #[error("driver: {0}")]
    Driver(String),
}

impl GpuError {
    /// The negative code the guest sees.
    pub fn code(&self) -> i32 {
        match self {
            Self::NoDevice => -1,
            Self::BadHandle => -2,
            Self::QuotaExceeded => -3,
            Self::OutOfBounds => -4,
            Self::InvalidArgument(_) => -5,
            Self::TooManyHandles => -6,
            Self::Kernel(_) => -7,
            Self::Driver(_) => -8,
        }
    }
}

/// A table of per-job handles. Handle values encode a slot and a generation, so a handle
/// that was freed (or never issued) is refused rather than aliasing a newer allocation.
#[derive(Debug)]
pub struct HandleTable<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<usize>,
}

impl<T> Default for HandleTable<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

const SLOT_BITS: u32 = 12;
const GEN_MASK: u32 = (1 << (31 - SLOT_BITS)) - 1;

impl<T> HandleTable<T> {
    /// Stores `value` and returns its handle (always positive).
    pub fn insert(&mut self, value: T) -> Result<i32, GpuError> {
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < MAX_HANDLES => {
                self.slots.push((0, None));
                self.slots.len() - 1
            }
            None => return Err(GpuError::TooManyHandles),
        };
        let slot = self.slots.get_mut(index).ok_or(GpuError::TooManyHandles)?;
        slot.1 = Some(value);
        Ok(((slot.0 << SLOT_BITS) | (index as u32 + 1)) as i32)
    }

    fn locate(&self, handle: i32) -> Option<usize> {
        let h = u32::try_from(handle).ok()?;
        let index = (h & ((1 << SLOT_BITS) - 1)).checked_sub(1)? as usize;
        let (generation, value) = self.slots.get(index)?;
        (*generation == h >> SLOT_BITS && value.is_some()).then_some(index)
    }

    /// The value behind a live handle.
    pub fn get(&self, handle: i32) -> Result<&T, GpuError> {
        let i = self.locate(handle).ok_or(GpuError::BadHandle)?;
        self.slots
            .get(i)
            .and_then(|s| s.1.as_ref())
            .ok_or(GpuError::BadHandle)
    }

    /// The value behind a live handle, mutably.
    pub fn get_mut(&mut self, handle: i32) -> Result<&mut T, GpuError> {
        let i = self.locate(handle).ok_or(GpuError::BadHandle)?;
        self.slots
            .get_mut(i)
            .and_then(|s| s.1.as_mut())
            .ok_or(GpuError::BadHandle)
    }

    /// Removes a live handle; the handle is never valid again.
    pub fn remove(&mut self, handle: i32) -> Result<T, GpuError> {
        let i = self.locate(handle).ok_or(GpuError::BadHandle)?;
        let slot = self.slots.get_mut(i).ok_or(GpuError::BadHandle)?;
        slot.0 = (slot.0 + 1) & GEN_MASK;
        let v = slot.1.take().ok_or(GpuError::BadHandle)?;
        self.free.push(i);
        Ok(v)
    }

    /// Live handles.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether no handle is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A job's GPU memory quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: u64,
    used: u64,
}

impl Quota {
    /// A quota of `limit` bytes, none used.
    pub fn new(limit: u64) -> Self {
        Self { limit, used: 0 }
    }

    /// Reserves `bytes` (zero is refused: it has no buffer to name).
    pub fn reserve(&mut self, bytes: u64) -> Result<(), GpuError> {
        if bytes == 0 {
            return Err(GpuError::InvalidArgument("zero-byte allocation"));
        }
        let used = self
            .used
            .checked_add(bytes)
            .ok_or(GpuError::QuotaExceeded)?;
        if used > self.limit {
            return Err(GpuError::QuotaExceeded);
        }
        self.used = used;
        Ok(())
    }

    /// Gives `bytes` back.
    pub fn release(&mut self, bytes: u64) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// Bytes still available.
    pub fn left(&self) -> u64 {
        self.limit - self.used
    }
}

/// CUDA devices on this machine (0 where there is no GPU or no driver): what a provider
/// offers and whether a devnet submits GPU jobs.
pub fn devices() -> usize {
    cuda::device_count().map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

/// The GPU jobs run on (device 0), as a provider describes it in its offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Model name as the driver reports it, e.g. `NVIDIA H100 80GB HBM3`.
    pub model: String,
    /// Device memory, in bytes.
    pub memory_bytes: u64,
    /// Compute capability (major, minor).
    pub compute_capability: (u8, u8),
    /// Driver version: the kernel module's (e.g. `550.54.15`) where it can be read, else
    /// the CUDA version the driver supports (e.g. `cuda 12.4`).
    pub driver: String,
    /// Whether NVRTC is installed, so that kernels can be given as CUDA C (offer feature
    /// `nvrtc`); without it only PTX loads.
    pub nvrtc: bool,
}

/// The device jobs run on, or `None` where there is no GPU or no driver. Jobs get one GPU
/// for now: the sandbox uses device 0 only, so that is the one a provider offers.
pub fn device_info() -> Option<DeviceInfo> {
    cuda::device_info().ok()
}

/// Why device 0 cannot be used (the driver library is missing, `cuInit` failed, no device,
/// no context), or `None` where jobs can use it. For diagnostics: a GPU machine whose driver
/// does not load says which step failed.
pub fn unavailable_reason() -> Option<String> {
    cuda::unavailable_reason().map(ToString::to_string)
}

/// The environment variable that says a CUDA GPU is expected on this machine: with
/// `SIETCH_REQUIRE_GPU=1` the GPU tests and the GPU benchmark fail, instead of reporting a
/// skip, when no device is usable (`scripts/gpu-check.sh`, `docs/gpu.md`).
pub const REQUIRE_GPU_ENV: &str = "SIETCH_REQUIRE_GPU";

/// Whether the environment says a GPU is expected here ([`REQUIRE_GPU_ENV`] is `1`).
pub fn gpu_expected() -> bool {
    std::env::var(REQUIRE_GPU_ENV).is_ok_and(|v| v == "1")
}

/// The GPU benchmark's kernel (CUDA C, compiled by NVRTC): each of `n` threads runs `iters`
/// dependent multiply-adds on `x[i]`, so its duration scales with `iters`; with `iters = 0`
/// it is an almost empty launch, for launch overhead. `sandbox/benches/gpu.rs` gives the same
/// source to a job (through `sietch_gpu`) and to [`direct_launches`].
pub const BENCH_KERNEL: &str = "extern \"C\" __global__ void spin(float *x, int n, int iters) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float v = x[i] + (float)i;
  for (int k = 0; k < iters; k++) v = v * 0.999f + 0.25f;
  x[i] = v;
}
";

/// The name of the kernel in [`BENCH_KERNEL`].
pub const BENCH_KERNEL_NAME: &str = "spin";

/// The GPU benchmark's baseline: [`BENCH_KERNEL`] launched `launches` times directly through
/// cudarc (no sandbox, no events) with `shape`, over a zeroed buffer of `n` floats; returns the
/// wall time from the first launch to the end of the final synchronize. `NoDevice` without a
/// GPU. Not part of the job API: benchmarks only.
#[doc(hidden)]
pub fn direct_launches(
    shape: LaunchShape,
    n: u32,
    iters: i32,
    launches: u32,
) -> Result<std::time::Duration, GpuError> {
    cuda::direct_launches(shape, n, iters, launches)
}

/// `offset..offset+len` inside a buffer of `size` bytes, or `OutOfBounds`.
pub fn check_range(size: u64, offset: i64, len: i32) -> Result<std::ops::Range<usize>, GpuError> {
    let offset = u64::try_from(offset).map_err(|_| GpuError::OutOfBounds)?;
    let len = u64::try_from(len).map_err(|_| GpuError::OutOfBounds)?;
    let end = offset.checked_add(len).ok_or(GpuError::OutOfBounds)?;
    if end > size {
        return Err(GpuError::OutOfBounds);
    }
    let start = usize::try_from(offset).map_err(|_| GpuError::OutOfBounds)?;
    let end = usize::try_from(end).map_err(|_| GpuError::OutOfBounds)?;
    Ok(start..end)
}

/// Grid and block dimensions and dynamic shared memory of a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchShape {
    /// Blocks in x, y, z.
    pub grid: [u32; 3],
    /// Threads per block in x, y, z.
    pub block: [u32; 3],
    /// Dynamic shared memory per block, in bytes.
    pub shared_bytes: u32,
}

impl LaunchShape {
    /// Refuses shapes the driver would refuse, before anything reaches the driver.
    pub fn validate(&self) -> Result<(), GpuError> {
        let [gx, gy, gz] = self.grid;
        let [bx, by, bz] = self.block;
        if self.grid.contains(&0) || self.block.contains(&0) {
            return Err(GpuError::InvalidArgument("zero grid or block dimension"));
        }
        if gx > i32::MAX as u32 || gy > 65_535 || gz > 65_535 {
            return Err(GpuError::InvalidArgument("grid too large"));
        }
        if bx > 1024 || by > 1024 || bz > 64 {
            return Err(GpuError::InvalidArgument("block dimension too large"));
        }
        if u64::from(bx) * u64::from(by) * u64::from(bz) > MAX_BLOCK_THREADS {
            return Err(GpuError::InvalidArgument(
                "more than 1024 threads per block",
            ));
        }
        if self.shared_bytes > MAX_SHARED_BYTES {
            return Err(GpuError::InvalidArgument(
                "more than 48 KiB of shared memory",
            ));
        }
        Ok(())
    }
}

/// The tag of a launch argument record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ArgTag {
    /// A buffer handle; the kernel receives the device pointer.
    Buffer = 0,
    /// `int`.
    I32 = 1,
    /// `unsigned int`.
    U32 = 2,
    /// `float` (bits in the low 32).
    F32 = 3,
    /// `long long`.
    I64 = 4,
    /// `unsigned long long`.
    U64 = 5,
    /// `double` (bits).
    F64 = 6,
}

/// One decoded launch argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KernelArg {
    /// A buffer handle of this job.
    Buffer(i32),
    /// `int`.
    I32(i32),
    /// `unsigned int`.
    U32(u32),
    /// `float`.
    F32(f32),
    /// `long long`.
    I64(i64),
    /// `unsigned long long`.
    U64(u64),
    /// `double`.
    F64(f64),
}

/// Decodes `{u32 tag, u32 0, u64 value}` records.
pub fn decode_args(bytes: &[u8]) -> Result<Vec<KernelArg>, GpuError> {
    if !bytes.len().is_multiple_of(16) || bytes.len() / 16 > MAX_ARGS {
        return Err(GpuError::InvalidArgument("argument list length"));
    }
    bytes
        .chunks_exact(16)
        .map(|r| {
            let mut tag = [0u8; 4];
            let mut val = [0u8; 8];
            tag.copy_from_slice(r.get(..4).unwrap_or(&[0; 4]));
            val.copy_from_slice(r.get(8..16).unwrap_or(&[0; 8]));
            let v = u64::from_le_bytes(val);
            Ok(match u32::from_le_bytes(tag) {
                0 => KernelArg::Buffer(i32::try_from(v).map_err(|_| GpuError::BadHandle)?),
                1 => KernelArg::I32(v as u32 as i32),
                2 => KernelArg::U32(v as u32),
                3 => KernelArg::F32(f32::from_bits(v as u32)),
                4 => KernelArg::I64(v as i64),
                5 => KernelArg::U64(v),
                6 => KernelArg::F64(f64::from_bits(v)),
                _ => return Err(GpuError::InvalidArgument("unknown argument tag")),
            })
        })
        .collect()
}

/// The GPU side of one job: its handles, quota, stream and measured GPU time.
pub(crate) struct JobGpu {
    /// `false`: the job was not given the GPU, and every call answers `NoDevice`.
    allowed: bool,
    quota: Quota,
    buffers: HandleTable<cuda::Buffer>,
    kernels: HandleTable<cuda::Kernel>,
    device: Option<cuda::JobStream>,
}

impl JobGpu {
    pub(crate) fn new(quota_bytes: u64, allowed: bool) -> Self {
        Self {
            allowed,
            quota: Quota::new(quota_bytes),
            buffers: HandleTable::default(),
            kernels: HandleTable::default(),
            device: None,
        }
    }

    /// The job's stream, created on first use.
    fn stream(&mut self) -> Result<&mut cuda::JobStream, GpuError> {
        if self.device.is_none() {
            self.device = Some(cuda::JobStream::new()?);
        }
        self.device.as_mut().ok_or(GpuError::NoDevice)
    }

    /// Waits for the job's GPU work, frees its memory and returns its GPU time.
    pub(crate) fn finish(&mut self) -> u64 {
        let ns = self.device.as_mut().map_or(0, |d| d.finish());
        self.buffers = HandleTable::default();
        self.kernels = HandleTable::default();
        ns
    }
}

/// The store data of a job, as `sietch_gpu` sees it: the memory and the job's GPU state.
pub(crate) trait GpuHost: Host {
    /// The job's GPU state.
    fn gpu_mut(&mut self) -> &mut JobGpu;
}

fn gpu_call<T: GpuHost>(
    caller: &mut Caller<'_, T>,
    f: impl FnOnce(&mut [u8], &mut JobGpu) -> Result<i32, GpuError>,
) -> wasmtime::Result<i32> {
    charge(caller, GPU_CALL_FUEL)?;
    let r = match host::split(caller) {
        Some((mem, st)) => {
            let gpu = st.gpu_mut();
            if gpu.allowed {
                f(mem, gpu)
            } else {
                Err(GpuError::NoDevice)
            }
        }
        None => Err(GpuError::OutOfBounds),
    };
    Ok(r.unwrap_or_else(|e| e.code()))
}

fn guest(mem: &[u8], ptr: i32, len: usize) -> Result<&[u8], GpuError> {
    let start = ptr as u32 as usize;
    mem.get(start..start.checked_add(len).ok_or(GpuError::OutOfBounds)?)
        .ok_or(GpuError::OutOfBounds)
}

fn guest_mut(mem: &mut [u8], ptr: i32, len: usize) -> Result<&mut [u8], GpuError> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len).ok_or(GpuError::OutOfBounds)?;
    mem.get_mut(start..end).ok_or(GpuError::OutOfBounds)
}

fn dims(mem: &[u8], ptr: i32) -> Result<[u32; 3], GpuError> {
    let b = guest(mem, ptr, 12)?;
    let mut out = [0u32; 3];
    for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
        let mut a = [0u8; 4];
        a.copy_from_slice(c);
        *o = u32::from_le_bytes(a);
    }
    Ok(out)
}

/// Registers `sietch_gpu` on `linker`.
pub(crate) fn add_to_linker<T: GpuHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "device_count", |mut c: Caller<'_, T>| {
        gpu_call(&mut c, |_, _| cuda::device_count())
    })?;
    linker.func_wrap(MODULE, "device_query", |mut c: Caller<'_, T>, out: i32| {
        gpu_call(&mut c, |mem, g| {
            let devices = cuda::device_count()?;
            let total = cuda::total_memory()?;
            let dst = guest_mut(mem, out, 24)?;
            let mut rec = [0u8; 24];
            rec[0..4].copy_from_slice(&(devices as u32).to_le_bytes());
            rec[8..16].copy_from_slice(&total.to_le_bytes());
            rec[16..24].copy_from_slice(&g.quota.left().to_le_bytes());
            dst.copy_from_slice(&rec);
            Ok(0)
        })
    })?;
    linker.func_wrap(
        MODULE,
        "alloc",
        |mut c: Caller<'_, T>, bytes: i64, out: i32| {
            gpu_call(&mut c, |mem, g| {
                let bytes =
                    u64::try_from(bytes).map_err(|_| GpuError::InvalidArgument("negative size"))?;
                let dst = guest_mut(mem, out, 4)?;
                g.quota.reserve(bytes)?;
                let buffer = g.stream().and_then(|s| s.alloc(bytes));
                let handle = buffer.and_then(|b| g.buffers.insert(b));
                match handle {
                    Ok(h) => {
                        dst.copy_from_slice(&h.to_le_bytes());
                        Ok(0)
                    }
                    Err(e) => {
                        g.quota.release(bytes);
                        Err(e)
                    }
                }
            })
        },
    )?;
    linker.func_wrap(MODULE, "free", |mut c: Caller<'_, T>, handle: i32| {
        gpu_call(&mut c, |_, g| {
            let b = g.buffers.remove(handle)?;
            g.quota.release(b.len());
            Ok(0)
        })
    })?;
    linker.func_wrap(
        MODULE,
        "upload",
        |mut c: Caller<'_, T>, handle: i32, offset: i64, src: i32, len: i32| {
            gpu_call(&mut c, |mem, g| {
                let buf = g.buffers.get_mut(handle)?;
                let range = check_range(buf.len(), offset, len)?;
                let data = guest(mem, src, range.len())?;
                let stream = g.device.as_mut().ok_or(GpuError::NoDevice)?;
                stream.upload(g.buffers.get_mut(handle)?, range, data)?;
                Ok(0)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "download",
        |mut c: Caller<'_, T>, handle: i32, offset: i64, dst: i32, len: i32| {
            gpu_call(&mut c, |mem, g| {
                let buf = g.buffers.get(handle)?;
                let range = check_range(buf.len(), offset, len)?;
                let out = guest_mut(mem, dst, range.len())?;
                let stream = g.device.as_mut().ok_or(GpuError::NoDevice)?;
                stream.download(g.buffers.get(handle)?, range, out)?;
                Ok(0)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "load_kernel",
        |mut c: Caller<'_, T>,
         kind: i32,
         src: i32,
         src_len: i32,
         name: i32,
         name_len: i32,
         out: i32| {
            gpu_call(&mut c, |mem, g| {
                let src_len = usize::try_from(src_len).map_err(|_| GpuError::OutOfBounds)?;
                if src_len > MAX_KERNEL_SOURCE {
                    return Err(GpuError::InvalidArgument("kernel source over 1 MiB"));
                }
                let source = std::str::from_utf8(guest(mem, src, src_len)?)
                    .map_err(|_| GpuError::InvalidArgument("kernel source is not UTF-8"))?
                    .to_string();
                let name_len = usize::try_from(name_len).map_err(|_| GpuError::OutOfBounds)?;
                let name = std::str::from_utf8(guest(mem, name, name_len.min(256))?)
                    .map_err(|_| GpuError::InvalidArgument("kernel name is not UTF-8"))?
                    .to_string();
                let kind = match kind {
                    0 => cuda::SourceKind::Ptx,
                    1 => cuda::SourceKind::CudaC,
                    _ => return Err(GpuError::InvalidArgument("kernel kind")),
                };
                guest_mut(mem, out, 4)?;
                g.stream()?;
                let kernel = cuda::load_kernel(kind, &source, &name)?;
                let h = g.kernels.insert(kernel)?;
                guest_mut(mem, out, 4)?.copy_from_slice(&h.to_le_bytes());
                Ok(0)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "launch",
        |mut c: Caller<'_, T>,
         kernel: i32,
         grid: i32,
         block: i32,
         shared: i32,
         args: i32,
         nargs: i32| {
            gpu_call(&mut c, |mem, g| {
                let shape = LaunchShape {
                    grid: dims(mem, grid)?,
                    block: dims(mem, block)?,
                    shared_bytes: u32::try_from(shared)
                        .map_err(|_| GpuError::InvalidArgument("negative shared memory"))?,
                };
                shape.validate()?;
                let n = usize::try_from(nargs).map_err(|_| GpuError::InvalidArgument("nargs"))?;
                if n > MAX_ARGS {
                    return Err(GpuError::InvalidArgument("more than 32 arguments"));
                }
                let args = decode_args(guest(mem, args, n * 16)?)?;
                for a in &args {
                    if let KernelArg::Buffer(h) = a {
                        g.buffers.get(*h)?;
                    }
                }
                let kernel = g.kernels.get(kernel)?;
                let stream = g.device.as_mut().ok_or(GpuError::NoDevice)?;
                stream.launch(kernel, shape, &args, &g.buffers)?;
                Ok(0)
            })
        },
    )?;
    linker.func_wrap(MODULE, "synchronize", |mut c: Caller<'_, T>| {
        gpu_call(&mut c, |_, g| {
            g.device.as_mut().ok_or(GpuError::NoDevice)?.synchronize()?;
            Ok(0)
        })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_and_foreign_handles_are_refused() {
        let mut mine = HandleTable::default();
        let a = mine.insert("a").unwrap();
        let b = mine.insert("b").unwrap();
        assert!(a > 0 && b > 0 && a != b);
        assert_eq!(mine.get(a), Ok(&"a"));
        assert_eq!(mine.remove(a), Ok("a"));
        assert_eq!(mine.get(a), Err(GpuError::BadHandle));
        // The slot is reused with a new generation: the old handle stays dead.
        let c = mine.insert("c").unwrap();
        assert_ne!(c, a);
        assert_eq!(mine.get(a), Err(GpuError::BadHandle));
        assert_eq!(mine.get(c), Ok(&"c"));
        for bad in [0, -1, i32::MAX, i32::MIN, b + 1] {
            assert_eq!(mine.get(bad), Err(GpuError::BadHandle), "{bad}");
        }
        // Another job's table: its handles name nothing here.
        let mut other: HandleTable<&str> = HandleTable::default();
        assert_eq!(other.get(b), Err(GpuError::BadHandle));
        assert_eq!(other.remove(c), Err(GpuError::BadHandle));
        assert_eq!(mine.len(), 2);
    }

    #[test]
    fn handle_table_is_bounded() {
        let mut t = HandleTable::default();
        for i in 0..MAX_HANDLES {
            t.insert(i).unwrap();
        }
        assert_eq!(t.insert(0), Err(GpuError::TooManyHandles));
    }

    #[test]
    fn quota_is_enforced_and_released() {
        let mut q = Quota::new(1000);
        q.reserve(600).unwrap();
        assert_eq!(q.reserve(401), Err(GpuError::QuotaExceeded));
        q.reserve(400).unwrap();
        assert_eq!(q.left(), 0);
        q.release(600);
        assert_eq!(q.left(), 600);
        assert_eq!(q.reserve(u64::MAX), Err(GpuError::QuotaExceeded));
        assert!(matches!(q.reserve(0), Err(GpuError::InvalidArgument(_))));
    }

    #[test]
    fn copies_outside_a_buffer_are_refused() {
        assert_eq!(check_range(100, 0, 100), Ok(0..100));
        assert_eq!(check_range(100, 99, 1), Ok(99..100));
        assert_eq!(check_range(100, 99, 2), Err(GpuError::OutOfBounds));
        assert_eq!(check_range(100, -1, 1), Err(GpuError::OutOfBounds));
        assert_eq!(check_range(100, 0, -1), Err(GpuError::OutOfBounds));
        assert_eq!(
            check_range(100, i64::MAX, i32::MAX),
            Err(GpuError::OutOfBounds)
        );
    }

    #[test]
    fn launch_shapes_are_checked() {
        let ok = LaunchShape {
            grid: [1024, 1, 1],
            block: [256, 1, 1],
            shared_bytes: 0,
        };
        assert_eq!(ok.validate(), Ok(()));
        for bad in [
            LaunchShape {
                grid: [0, 1, 1],
                ..ok
            },
            LaunchShape {
                block: [1025, 1, 1],
                ..ok
            },
            LaunchShape {
                block: [64, 64, 1],
                ..ok
            },
            LaunchShape {
                grid: [1, 65_536, 1],
                ..ok
            },
            LaunchShape {
                shared_bytes: MAX_SHARED_BYTES + 1,
                ..ok
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(GpuError::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn launch_arguments_decode_and_reject_garbage() {
        let mut rec = Vec::new();
        for (tag, val) in [
            (0u32, 7u64),
            (1, u64::from((-3i32) as u32)),
            (3, u64::from(1.5f32.to_bits())),
        ] {
            rec.extend_from_slice(&tag.to_le_bytes());
            rec.extend_from_slice(&[0; 4]);
            rec.extend_from_slice(&val.to_le_bytes());
        }
        assert_eq!(
            decode_args(&rec),
            Ok(vec![
                KernelArg::Buffer(7),
                KernelArg::I32(-3),
                KernelArg::F32(1.5)
            ])
        );
        assert!(decode_args(&rec[..15]).is_err());
        let mut bad = rec.clone();
        bad[0] = 99;
        assert!(decode_args(&bad).is_err());
        assert!(decode_args(&vec![0u8; 16 * (MAX_ARGS + 1)]).is_err());
    }

    /// Where there is no device every call answers `NoDevice`; where there is one a job's
    /// stream opens. Either way something is checked; with `SIETCH_REQUIRE_GPU=1` a missing
    /// device fails.
    #[test]
    fn job_streams_open_only_where_there_is_a_device() {
        let mut g = JobGpu::new(1 << 20, true);
        match cuda::device_count() {
            Err(e) => {
                assert!(
                    !gpu_expected(),
                    "SIETCH_REQUIRE_GPU=1 but no usable CUDA device: {}",
                    unavailable_reason().unwrap_or_default()
                );
                assert_eq!(e, GpuError::NoDevice);
                assert!(unavailable_reason().is_some());
                assert_eq!(g.stream().err(), Some(GpuError::NoDevice));
            }
            Ok(n) => {
                assert!(n > 0);
                assert_eq!(unavailable_reason(), None);
                assert!(g.stream().is_ok());
            }
        }
        assert_eq!(g.finish(), 0);
    }
}
