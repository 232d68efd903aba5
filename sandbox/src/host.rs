//! What every host module (`wasi`, `gpu`, `kernels`) needs from the job it serves, and
//! nothing else: the guest's memory, fuel charging, and the limits a host call can hit.
//!
//! The host modules are generic over the store data through [`Host`] and their own small
//! accessor traits; `state::JobState` implements them all. So imports point one way:
//! `runner` → `state` → `wasi`/`gpu`/`kernels` → `host`, and no host module names the
//! runner or another module's state.

use wasmtime::{Caller, Memory, Trap};

/// The store data of a job, as the host modules see it.
pub(crate) trait Host: Sized + Send + 'static {
    /// The guest's exported memory, once the instance exists.
    fn memory(&self) -> Option<Memory>;
}

/// Which limit a host call or the limiter hit: ends the job with the matching outcome.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LimitHit {
    #[error("memory limit exceeded")]
    Memory,
    #[error("output limit exceeded")]
    Output,
}

/// Burns `fuel` for host work; out of fuel ends the job the same way running out in guest
/// code does.
pub(crate) fn charge<T>(caller: &mut Caller<'_, T>, fuel: u64) -> wasmtime::Result<()> {
    let Ok(left) = caller.get_fuel() else {
        // Fuel metering is off (benchmarks only): nothing to charge.
        return Ok(());
    };
    if left < fuel {
        caller.set_fuel(0)?;
        return Err(Trap::OutOfFuel.into());
    }
    caller.set_fuel(left - fuel)?;
    Ok(())
}

/// The guest's memory and the job state, borrowed together; `None` before the instance has
/// exported its memory.
pub(crate) fn split<'a, T: Host>(
    caller: &'a mut Caller<'_, T>,
) -> Option<(&'a mut [u8], &'a mut T)> {
    let memory = caller.data().memory()?;
    Some(memory.data_and_store_mut(caller))
}
