//! The store data of one job, and its answers to the host modules' accessor traits
//! ([`Host`], [`WasiHost`], [`GpuHost`]): the one place that knows every module's state.

use wasmtime::{Memory, ResourceLimiter};

use crate::gpu::{GpuHost, JobGpu};
use crate::host::{Host, LimitHit};
use crate::wasi::{WasiHost, WasiState};

/// The store data of one job.
pub(crate) struct JobState {
    pub(crate) memory: Option<Memory>,
    pub(crate) wasi: WasiState,
    pub(crate) gpu: JobGpu,
    pub(crate) memory_limit: usize,
    pub(crate) table_limit: usize,
}

impl ResourceLimiter for JobState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(LimitHit::Memory.into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_limit {
            return Err(LimitHit::Memory.into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

impl Host for JobState {
    fn memory(&self) -> Option<Memory> {
        self.memory
    }
}

impl WasiHost for JobState {
    fn wasi(&self) -> &WasiState {
        &self.wasi
    }

    fn wasi_mut(&mut self) -> &mut WasiState {
        &mut self.wasi
    }
}

impl GpuHost for JobState {
    fn gpu_mut(&mut self) -> &mut JobGpu {
        &mut self.gpu
    }
}
