//! The market's settlement messages (the one definition of their EIP-712 form) as the escrow
//! bindings' call arguments. Both sides are generated from the same Solidity structs, so the
//! conversion goes through their ABI encoding rather than repeating the fields; both types are
//! foreign to this crate, so a local trait stands in for `From`.

use alloy::sol_types::{SolType, SolValue};
use anyhow::Context;
use sietch_contracts::SietchEscrow;
use sietch_market::{ResultCommitment, Ticket, TypedData, Voucher};

/// A `sietch_market` settlement message that the escrow takes as an argument.
pub(super) trait ToContract: TypedData<Sol: SolValue> {
    /// The bindings' struct.
    type Contract: SolValue + From<<<Self::Contract as SolValue>::SolType as SolType>::RustType>;

    /// The same message, as the contract call takes it.
    fn to_contract(&self) -> anyhow::Result<Self::Contract> {
        Self::Contract::abi_decode(&self.to_sol().abi_encode())
            .context("the market's and the escrow's forms of a settlement message differ")
    }
}

impl ToContract for Voucher {
    type Contract = SietchEscrow::Voucher;
}

impl ToContract for Ticket {
    type Contract = SietchEscrow::Ticket;
}

impl ToContract for ResultCommitment {
    type Contract = SietchEscrow::ResultCommitment;
}

#[cfg(test)]
mod tests {
    use super::ToContract;
    use sietch_market::{B256, ResultCommitment, Ticket, U256, Voucher};

    #[test]
    fn fields_survive_the_conversion() {
        let v = Voucher {
            channel_id: B256::repeat_byte(3),
            cumulative_amount: U256::from(42),
        };
        let c = v.to_contract().unwrap();
        assert_eq!(c.channelId, v.channel_id);
        assert_eq!(c.cumulativeAmount, v.cumulative_amount);
        let t = Ticket {
            job_id: B256::repeat_byte(1),
            spec_hash: B256::repeat_byte(2),
            channel_id: B256::repeat_byte(3),
            cumulative_before: U256::from(13),
            max_amount: U256::from(17),
            deadline: 19,
            check_commit: B256::repeat_byte(5),
        };
        let c = t.to_contract().unwrap();
        assert_eq!(
            (c.channelId, c.cumulativeBefore, c.maxAmount, c.deadline),
            (t.channel_id, t.cumulative_before, t.max_amount, 19)
        );
        let r = ResultCommitment {
            job_id: B256::repeat_byte(1),
            spec_hash: B256::repeat_byte(2),
            output_hash: B256::repeat_byte(4),
            fuel_used: 7,
            gpu_millis: 9,
            amount: U256::from(11),
        };
        let c = r.to_contract().unwrap();
        assert_eq!(
            (
                c.jobId,
                c.specHash,
                c.outputHash,
                c.fuelUsed,
                c.gpuMillis,
                c.amount
            ),
            (r.job_id, r.spec_hash, r.output_hash, 7, 9, r.amount)
        );
    }
}
