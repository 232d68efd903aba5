//! Rust bindings for the Sietch escrow contract (`contracts/src/SietchEscrow.sol`), generated
//! with alloy's `sol!` from the committed forge artifacts in `contracts/artifacts/`
//! (`contracts/test.sh` fails when a fresh forge build drifts from them).
//!
//! - [`SietchEscrow`] and [`MockToken`]: typed calls, events and errors of the contracts;
//! - [`eip712`]: the domain and signing of tickets, result commitments and vouchers, identical to
//!   the contract's (`docs/eip712.md`);
//! - [`deploy`]: deploy the escrow (and a mock token for development) to any provider;
//! - [`EscrowError`]: reverts decoded into the contract's custom errors.

mod deploy_impl;
mod error;

pub mod eip712;

/// Deploy helpers.
pub mod deploy {
    pub use crate::deploy_impl::{
        Deployment, deploy_escrow, deploy_mock_token, deploy_with_mock_token,
    };
}

pub use error::{EscrowError, send, send_pair};

#[allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]
mod generated {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        SietchEscrow,
        "../artifacts/SietchEscrow.json"
    );

    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        MockToken,
        "../artifacts/MockToken.json"
    );
}

pub use generated::{MockToken, SietchEscrow};
