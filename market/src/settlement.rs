//! The three messages money moves on: the buyer's ticket, the provider's result
//! commitment and the buyer's voucher. Each has a canonical encoding for the wire and
//! store, and an EIP-712 form (see [`crate::eip712`]) for signatures the contract checks.

use alloy_primitives::{B256, U256, keccak256};

use crate::codec::{Canonical, Kind, Reader, Writer};
use crate::error::DecodeError;
use crate::job::{JobSpec, PPM};
use crate::offer::Prices;

/// Signed by the buyer when it sends a job: the most the provider may charge for it,
/// which channel pays, and the commit of the spot-check secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    /// The job (see [`crate::job_id`]).
    pub job_id: B256,
    /// blake3 of the canonical job spec.
    pub spec_hash: B256,
    /// The paying channel.
    pub channel_id: B256,
    /// The channel's cumulative voucher amount the buyer had signed before this job: the job's
    /// range on the channel's cumulative line is `[cumulative_before, cumulative_before +
    /// amount]`, so a ticket and a voucher never pay the same job twice (see `contracts/README.md`).
    pub cumulative_before: U256,
    /// Most the provider may charge, in token base units.
    pub max_amount: U256,
    /// Unix seconds: the last second the provider may claim this ticket on chain (the escrow
    /// refuses it after). The provider answers, and claims if it must, before it.
    pub deadline: u64,
    /// `keccak256(secret)`: the buyer reveals `secret` after the result commitment.
    pub check_commit: B256,
    /// The offer's price per 10^9 units of fuel: the escrow refuses a claim that charges
    /// more than the metered usage at these prices (rounded up once, as [`cost`] does).
    pub per_gfuel: u128,
    /// The offer's price per GPU-second; 0 for a job that asks for no GPU, so that no GPU
    /// time can be billed for it.
    pub per_gpu_second: u128,
}

/// Fuel per billing unit of an offer's price: prices are per 10^9 fuel ("gfuel").
pub const FUEL_PER_GFUEL: u128 = 1_000_000_000;

/// What a run that used `fuel` and `gpu_millis` costs at these prices, rounded up once over
/// the sum in 10^-9 token units: the most a result commitment may charge under a ticket with
/// these prices (the escrow computes the same). The one price formula: the order book ranks
/// offers by it ([`max_cost`]), providers bill by it and buyers hold charges to it.
pub fn cost(fuel: u64, gpu_millis: u64, per_gfuel: u128, per_gpu_second: u128) -> u128 {
    cost_nano(fuel, gpu_millis, per_gfuel, per_gpu_second).div_ceil(FUEL_PER_GFUEL)
}

/// [`cost`] before its rounding, in 10^-9 token units (saturating): what the order book
/// compares against a price cap without a division per offer.
#[inline]
pub fn cost_nano(fuel: u64, gpu_millis: u64, per_gfuel: u128, per_gpu_second: u128) -> u128 {
    let fuel_nano = mul(u128::from(fuel), per_gfuel);
    // per GPU-second = per_gpu_second · 10^6 nano-units per GPU-millisecond.
    let gpu_nano = mul(u128::from(gpu_millis) * 1_000_000, per_gpu_second);
    fuel_nano.saturating_add(gpu_nano)
}

/// `a · b`, saturating. Operands that fit in 64 bits (every realistic price and usage) take
/// one multiply instead of the slow library call of a full 128-bit one.
#[inline]
fn mul(a: u128, b: u128) -> u128 {
    match (u64::try_from(a), u64::try_from(b)) {
        (Ok(x), Ok(y)) => u128::from(x) * u128::from(y),
        _ => a.saturating_mul(b),
    }
}

/// GPUs a spec asks for (0 for a CPU job).
pub fn gpus_needed(spec: &JobSpec) -> u8 {
    spec.requirements.gpu.as_ref().map_or(0, |g| g.count)
}

/// The most GPU time a run of `spec` can bill: its wall time on each GPU it asks for.
pub fn max_gpu_millis(spec: &JobSpec) -> u64 {
    spec.limits
        .wall_time_ms
        .saturating_mul(u64::from(gpus_needed(spec)))
}

/// The most a job can cost at these prices ([`cost`] of all its fuel and its wall time on
/// every GPU it asks for): how the order book ranks offers and what a buyer's ticket allows.
pub fn max_cost(spec: &JobSpec, prices: &Prices) -> u128 {
    cost(
        spec.limits.fuel,
        max_gpu_millis(spec),
        prices.per_gfuel,
        prices.per_gpu_second,
    )
}

/// The escrow's id of the ticket for `job_id` on `channel_id`: `keccak256(channelId ‖
/// jobId)`.
pub fn ticket_id(channel_id: &B256, job_id: &B256) -> B256 {
    keccak256([channel_id.as_slice(), job_id.as_slice()].concat())
}

/// Signed by a provider (or a verifier) for the result it computed, for the job's ticket on
/// one channel: the escrow counts it on that ticket only (ticket id = keccak(channel, job)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResultCommitment {
    /// The job.
    pub job_id: B256,
    /// blake3 of the canonical job spec.
    pub spec_hash: B256,
    /// The channel of the ticket the result is for (a spot-check re-run: the re-run's own).
    pub channel_id: B256,
    /// blake3 of the canonical output encoding.
    pub output_hash: B256,
    /// Fuel the run used.
    pub fuel_used: u64,
    /// GPU time the run used, in milliseconds.
    pub gpu_millis: u64,
    /// What the provider charges: metered usage times its prices, capped by the ticket.
    pub amount: U256,
}

/// Signed by the buyer: everything it owes on the channel so far. Only the latest matters;
/// a claim pays the difference from what was already paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Voucher {
    /// The channel.
    pub channel_id: B256,
    /// Total owed since the channel opened, in token base units.
    pub cumulative_amount: U256,
}

impl Canonical for Ticket {
    const KIND: Kind = Kind::Ticket;
    const MAX_SIZE: usize = 2 + 32 * 6 + 8 + 16 * 2;

    fn encode_body(&self, w: &mut Writer) {
        w.b256(&self.job_id);
        w.b256(&self.spec_hash);
        w.b256(&self.channel_id);
        w.u256(&self.cumulative_before);
        w.u256(&self.max_amount);
        w.u64(self.deadline);
        w.b256(&self.check_commit);
        w.u128(self.per_gfuel);
        w.u128(self.per_gpu_second);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            job_id: r.b256()?,
            spec_hash: r.b256()?,
            channel_id: r.b256()?,
            cumulative_before: r.u256()?,
            max_amount: r.u256()?,
            deadline: r.u64()?,
            check_commit: r.b256()?,
            per_gfuel: r.u128()?,
            per_gpu_second: r.u128()?,
        })
    }
}

impl Canonical for ResultCommitment {
    const KIND: Kind = Kind::ResultCommitment;
    const MAX_SIZE: usize = 2 + 32 * 5 + 16;

    fn encode_body(&self, w: &mut Writer) {
        w.b256(&self.job_id);
        w.b256(&self.spec_hash);
        w.b256(&self.channel_id);
        w.b256(&self.output_hash);
        w.u64(self.fuel_used);
        w.u64(self.gpu_millis);
        w.u256(&self.amount);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            job_id: r.b256()?,
            spec_hash: r.b256()?,
            channel_id: r.b256()?,
            output_hash: r.b256()?,
            fuel_used: r.u64()?,
            gpu_millis: r.u64()?,
            amount: r.u256()?,
        })
    }
}

impl Canonical for Voucher {
    const KIND: Kind = Kind::Voucher;
    const MAX_SIZE: usize = 2 + 64;

    fn encode_body(&self, w: &mut Writer) {
        w.b256(&self.channel_id);
        w.u256(&self.cumulative_amount);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            channel_id: r.b256()?,
            cumulative_amount: r.u256()?,
        })
    }
}

/// The commit a ticket carries for a spot-check `secret`: `keccak256(secret)`.
pub fn check_commit(secret: &B256) -> B256 {
    keccak256(secret)
}

/// Whether the job is spot-checked: `uint256(keccak256(secret ‖ jobId)) < q · 2^256`
/// with `q = sampling_ppm / 10^6`. The provider commits to its result before the buyer
/// reveals `secret`, so it cannot tell which jobs will be checked.
pub fn is_checked(secret: &B256, job_id: &B256, sampling_ppm: u32) -> bool {
    if sampling_ppm >= PPM {
        return true;
    }
    let mut pre = [0u8; 64];
    pre[..32].copy_from_slice(secret.as_slice());
    pre[32..].copy_from_slice(job_id.as_slice());
    let draw = U256::from_be_bytes(keccak256(pre).0);
    // q · 2^256 = floor(2^256 / 10^6) · ppm, off by less than ppm out of 2^256.
    let threshold = (U256::MAX / U256::from(PPM)) * U256::from(sampling_ppm);
    draw < threshold
}

/// The most a job may be worth to be sent to a provider with `stake`, so that cheating
/// on it does not pay: `stake · q / (1 − q)` (`docs/protocol.md` §4.4). `None` means no bound
/// (every job is checked, `q = 1`).
pub fn max_job_value(stake: u128, sampling_ppm: u32) -> Option<u128> {
    if sampling_ppm >= PPM {
        return None;
    }
    let v = U256::from(stake) * U256::from(sampling_ppm) / U256::from(PPM - sampling_ppm);
    Some(u128::try_from(v).unwrap_or(u128::MAX))
}

/// The least stake a provider needs for a job worth `value`: `value · (1 − q) / q`,
/// rounded up. `None` when no stake is enough (`q = 0`: the job is never checked).
pub fn min_stake_for(value: u128, sampling_ppm: u32) -> Option<u128> {
    if sampling_ppm == 0 {
        return (value == 0).then_some(0);
    }
    if sampling_ppm >= PPM {
        return Some(0);
    }
    let num = U256::from(value) * U256::from(PPM - sampling_ppm);
    let den = U256::from(sampling_ppm);
    let v = num.div_ceil(den);
    Some(u128::try_from(v).unwrap_or(u128::MAX))
}
