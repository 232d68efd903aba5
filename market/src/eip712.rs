//! EIP-712 typed data for tickets, result commitments and vouchers: the hashes and
//! signatures the escrow contract checks on chain.
//!
//! The type strings and the domain are fixed in `docs/eip712.md`; the contract declares the
//! same ones, and the vectors in `market/testdata/eip712_vectors.json` prove on both sides
//! that they agree. Signatures are 65 bytes `r ‖ s ‖ v` with `v` in {27, 28} and a low `s`.

use alloy_primitives::{Address, B256, Signature, U256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{Eip712Domain, SolStruct};

use crate::error::Eip712Error;
use crate::settlement::{ResultCommitment, Ticket, Voucher};

/// Solidity forms of the settlement messages, as the contract declares them.
pub mod sol {
    #![allow(missing_docs)]
    alloy_sol_types::sol! {
        #[derive(Debug, PartialEq, Eq)]
        struct Ticket {
            bytes32 jobId;
            bytes32 specHash;
            bytes32 channelId;
            uint256 cumulativeBefore;
            uint256 maxAmount;
            uint64 deadline;
            bytes32 checkCommit;
            uint128 pricePerGFuel;
            uint128 pricePerGpuSecond;
        }

        #[derive(Debug, PartialEq, Eq)]
        struct ResultCommitment {
            bytes32 jobId;
            bytes32 specHash;
            bytes32 channelId;
            bytes32 outputHash;
            uint64 fuelUsed;
            uint64 gpuMillis;
            uint256 amount;
        }

        #[derive(Debug, PartialEq, Eq)]
        struct Voucher {
            bytes32 channelId;
            uint256 cumulativeAmount;
        }
    }
}

/// The EIP-712 domain name.
pub const DOMAIN_NAME: &str = "Sietch";
/// The EIP-712 domain version.
pub const DOMAIN_VERSION: &str = "1";

/// The signing domain: one escrow contract on one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Domain {
    /// The chain's id.
    pub chain_id: u64,
    /// The escrow contract's address.
    pub verifying_contract: Address,
}

impl Domain {
    /// The domain of the escrow at `verifying_contract` on chain `chain_id`.
    pub const fn new(chain_id: u64, verifying_contract: Address) -> Self {
        Self {
            chain_id,
            verifying_contract,
        }
    }

    /// The alloy form of the domain.
    pub fn eip712(&self) -> Eip712Domain {
        Eip712Domain::new(
            Some(DOMAIN_NAME.into()),
            Some(DOMAIN_VERSION.into()),
            Some(U256::from(self.chain_id)),
            Some(self.verifying_contract),
            None,
        )
    }

    /// The domain separator.
    pub fn separator(&self) -> B256 {
        self.eip712().separator()
    }
}

/// A settlement message that is signed as EIP-712 typed data.
pub trait TypedData {
    /// The Solidity struct.
    type Sol: SolStruct;
    /// The Solidity form.
    fn to_sol(&self) -> Self::Sol;

    /// The EIP-712 struct hash.
    fn struct_hash(&self) -> B256 {
        self.to_sol().eip712_hash_struct()
    }

    /// The digest that is signed: `keccak256(0x1901 ‖ domainSeparator ‖ structHash)`.
    fn digest(&self, domain: &Domain) -> B256 {
        self.to_sol().eip712_signing_hash(&domain.eip712())
    }

    /// Signs the digest with an EVM key; returns the 65-byte signature.
    fn sign(&self, domain: &Domain, key: &PrivateKeySigner) -> Result<[u8; 65], Eip712Error> {
        sign_digest(&self.digest(domain), key)
    }

    /// Checks that `signature` over this message was made by `expected`.
    fn verify(
        &self,
        domain: &Domain,
        signature: &[u8],
        expected: Address,
    ) -> Result<(), Eip712Error> {
        let recovered = recover(&self.digest(domain), signature)?;
        if recovered == expected {
            Ok(())
        } else {
            Err(Eip712Error::WrongSigner {
                recovered,
                expected,
            })
        }
    }
}

/// Signs `digest` with an EVM key: RFC 6979 (deterministic) ECDSA over secp256k1 with a low
/// `s`, the signature `alloy`'s signer makes, computed by libsecp256k1, which is several times
/// faster than `k256` (three signatures per job are on the market's hot path).
pub fn sign_digest(digest: &B256, key: &PrivateKeySigner) -> Result<[u8; 65], Eip712Error> {
    let secret = secp256k1::SecretKey::from_byte_array(key.credential().to_bytes().into())
        .map_err(|e| Eip712Error::Signing(e.to_string()))?;
    let sig = secp256k1::SECP256K1
        .sign_ecdsa_recoverable(secp256k1::Message::from_digest(digest.0), &secret);
    Ok(Signature::from(sig).as_bytes())
}

/// The address that signed `digest`, refusing malformed and malleable signatures (the same
/// rules as OpenZeppelin's `ECDSA.tryRecover`, which the contract uses).
pub fn recover(digest: &B256, signature: &[u8]) -> Result<Address, Eip712Error> {
    let bytes: &[u8; 65] = signature
        .try_into()
        .map_err(|_| Eip712Error::Malformed("signature must be 65 bytes"))?;
    let v = bytes[64];
    if v != 27 && v != 28 {
        return Err(Eip712Error::Malformed("v must be 27 or 28"));
    }
    let sig = Signature::from_raw(bytes).map_err(|_| Eip712Error::Malformed("bad r or s"))?;
    if sig.normalize_s().is_some() {
        return Err(Eip712Error::Malformed(
            "s is in the upper half of the curve order",
        ));
    }
    sig.recover_address_from_prehash(digest)
        .map_err(|_| Eip712Error::Malformed("unrecoverable"))
}

impl TypedData for Ticket {
    type Sol = sol::Ticket;
    fn to_sol(&self) -> sol::Ticket {
        sol::Ticket {
            jobId: self.job_id,
            specHash: self.spec_hash,
            channelId: self.channel_id,
            cumulativeBefore: self.cumulative_before,
            maxAmount: self.max_amount,
            deadline: self.deadline,
            checkCommit: self.check_commit,
            pricePerGFuel: self.per_gfuel,
            pricePerGpuSecond: self.per_gpu_second,
        }
    }
}

impl TypedData for ResultCommitment {
    type Sol = sol::ResultCommitment;
    fn to_sol(&self) -> sol::ResultCommitment {
        sol::ResultCommitment {
            jobId: self.job_id,
            specHash: self.spec_hash,
            channelId: self.channel_id,
            outputHash: self.output_hash,
            fuelUsed: self.fuel_used,
            gpuMillis: self.gpu_millis,
            amount: self.amount,
        }
    }
}

impl TypedData for Voucher {
    type Sol = sol::Voucher;
    fn to_sol(&self) -> sol::Voucher {
        sol::Voucher {
            channelId: self.channel_id,
            cumulativeAmount: self.cumulative_amount,
        }
    }
}
