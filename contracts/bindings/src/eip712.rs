//! EIP-712 signing of the escrow's messages (`docs/eip712.md`): the domain binds the chain and the
//! contract, the struct types are those of the contract ABI, and signatures are 65 bytes
//! `r || s || v` with `v` in {27, 28} and low `s`, as the contract requires.

use alloy::primitives::{Address, B256, Bytes};
use alloy::signers::SignerSync;
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};

use crate::EscrowError;

/// The escrow's domain: name "Sietch", version "1", the chain and the escrow address.
pub fn domain(chain_id: u64, escrow: Address) -> Eip712Domain {
    eip712_domain! {
        name: "Sietch",
        version: "1",
        chain_id: chain_id,
        verifying_contract: escrow,
    }
}

/// The digest the contract's `hashTicket`/`hashResult`/`hashVoucher` return for `message`.
pub fn digest<T: SolStruct>(message: &T, domain: &Eip712Domain) -> B256 {
    message.eip712_signing_hash(domain)
}

/// Signs any of the escrow's typed messages (`Voucher` and `Ticket` by the buyer,
/// `ResultCommitment` by a provider or verifier), returning the 65-byte signature the contract takes.
pub fn sign<T: SolStruct, S: SignerSync>(
    signer: &S,
    message: &T,
    domain: &Eip712Domain,
) -> Result<Bytes, EscrowError> {
    let sig = signer.sign_hash_sync(&digest(message, domain))?;
    Ok(Bytes::from(sig.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SietchEscrow::{ResultCommitment, Ticket, Voucher};
    use alloy::primitives::{U256, keccak256};

    #[test]
    fn type_strings_match_docs() {
        let v = Voucher {
            channelId: B256::ZERO,
            cumulativeAmount: U256::ZERO,
        };
        assert_eq!(
            v.eip712_type_hash(),
            keccak256("Voucher(bytes32 channelId,uint256 cumulativeAmount)")
        );
        let t = Ticket {
            jobId: B256::ZERO,
            specHash: B256::ZERO,
            channelId: B256::ZERO,
            cumulativeBefore: U256::ZERO,
            maxAmount: U256::ZERO,
            deadline: 0,
            checkCommit: B256::ZERO,
            pricePerGFuel: 0,
            pricePerGpuSecond: 0,
        };
        assert_eq!(
            t.eip712_type_hash(),
            keccak256(
                "Ticket(bytes32 jobId,bytes32 specHash,bytes32 channelId,uint256 cumulativeBefore,uint256 maxAmount,uint64 deadline,bytes32 checkCommit,uint128 pricePerGFuel,uint128 pricePerGpuSecond)"
            )
        );
        let r = ResultCommitment {
            jobId: B256::ZERO,
            specHash: B256::ZERO,
            channelId: B256::ZERO,
            outputHash: B256::ZERO,
            fuelUsed: 0,
            gpuMillis: 0,
            amount: U256::ZERO,
        };
        assert_eq!(
            r.eip712_type_hash(),
            keccak256(
                "ResultCommitment(bytes32 jobId,bytes32 specHash,bytes32 channelId,bytes32 outputHash,uint64 fuelUsed,uint64 gpuMillis,uint256 amount)"
            )
        );
    }

    #[test]
    fn signature_is_65_bytes_with_v_27_or_28() {
        let signer = alloy::signers::local::PrivateKeySigner::random();
        let v = Voucher {
            channelId: B256::repeat_byte(7),
            cumulativeAmount: U256::from(5),
        };
        let sig = sign(&signer, &v, &domain(31337, Address::ZERO)).unwrap();
        assert_eq!(sig.len(), 65);
        assert!(matches!(sig.last(), Some(27 | 28)));
    }
}
