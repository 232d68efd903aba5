//! Sietch's market core: the protocol's types, their canonical encoding, their signatures
//! and the order book.
//!
//! - [`Offer`], [`JobSpec`], [`Ticket`], [`ResultCommitment`], [`Voucher`]: the protocol's
//!   messages (design sections 2 and 4).
//! - [`codec`]: one canonical, versioned, bounded binary encoding for all of them; decoding
//!   arbitrary bytes never panics.
//! - [`Signed`]: ed25519 signatures for offers and p2p messages; [`eip712`]: EIP-712
//!   signatures for the messages the escrow contract checks.
//! - [`OrderBook`]: live offers, matching and ranking, with an explanation when nothing fits.
//!
//! This crate knows nothing of tokio, libp2p or wasmtime: time is passed in as unix
//! seconds, and everything is synchronous.

pub mod book;
pub mod codec;
pub mod eip712;
pub mod error;
pub mod job;
pub mod offer;
pub mod settlement;
pub mod signed;

pub use book::{
    BookConfig, Funnel, Insertion, Match, NoMatch, Observations, OrderBook, PeerStats, Stage,
};
pub use codec::Canonical;
pub use eip712::{Domain, TypedData};
pub use error::{DecodeError, Eip712Error, OfferError, SignatureError};
pub use job::{
    BlobRef, Comparison, FloatKind, FloatOutput, GpuNeeds, Input, JobSpec, Limits, Requirements,
    VerificationPolicy, job_id,
};
pub use offer::{ComputeCapability, Gpu, Hardware, Offer, Prices, Withdrawal};
pub use settlement::{
    ResultCommitment, Ticket, Voucher, check_commit, is_checked, max_job_value, min_stake_for,
};
pub use signed::{PublicKey, Signable, Signed, Verified};

pub use alloy_primitives::{Address, B256, U256};
