//! Sietch's market core: the protocol's types, their canonical encoding, their signatures
//! and the order book.
//!
//! - [`Offer`], [`JobSpec`], [`Ticket`], [`ResultCommitment`], [`Voucher`]: the protocol's
//!   messages (`docs/protocol.md` §2 and §4).
//! - [`codec`]: one canonical, versioned, bounded binary encoding for all of them; decoding
//!   arbitrary bytes never panics.
//! - [`Signed`]: ed25519 signatures for offers and p2p messages; [`eip712`]: EIP-712
//!   signatures for the messages the escrow contract checks.
//! - [`OrderBook`]: live offers, matching and ranking, with an explanation when nothing fits.
//! - [`result`]: a job's result, one contract for every role: its [`Outcome`], its
//!   [`Outputs`], their one encoding and output hash, and [`check_result`]; with
//!   [`settlement::cost`], the one price formula.
//! - [`names`]: the one rule for input and output file names, and [`printable`] for showing
//!   a peer's text.
//!
//! This crate knows nothing of tokio, libp2p or wasmtime: time is passed in as unix
//! seconds, and everything is synchronous.
//!
//! # Example: a provider's offer through the wire into a buyer's book
//!
//! ```
//! use ed25519_dalek::SigningKey;
//! use sietch_market::*;
//!
//! let now = 1_700_000_000;
//! let key = SigningKey::from_bytes(&[7; 32]);
//! let offer = Offer {
//!     provider: PublicKey::of(&key),
//!     evm_address: Address::repeat_byte(1),
//!     hardware: Hardware { cpu_cores: 8, memory_bytes: 16 << 30, gpus: vec![] },
//!     features: vec![],
//!     prices: Prices { per_gfuel: 1_000, per_gpu_second: 0 },
//!     stake: 1_000_000,
//!     addresses: vec![],
//!     sequence: 1,
//!     expires_at: now + 600,
//!     max_input_bytes: 0, cached_blobs: vec![],
//! };
//! // The provider signs and gossips canonical bytes...
//! let wire = Signed::sign(offer, &key).encode();
//! // ...and a buyer's node decodes, verifies and files them.
//! let mut book = OrderBook::default();
//! book.ingest(&wire, now)?;
//!
//! let spec = JobSpec {
//!     module: B256::repeat_byte(0xab),
//!     args: vec![],
//!     env: vec![],
//!     stdin: None,
//!     inputs: vec![],
//!     limits: Limits { fuel: 2_000_000_000, memory_bytes: 1 << 30, wall_time_ms: 10_000, output_bytes: 1 << 20 },
//!     requirements: Requirements::default(),
//!     verification: VerificationPolicy::default(), // 10% sampling, one re-run, exact
//!     price_cap: 5_000,
//!     deadline: now + 3_600,
//! };
//! let best = book.find(&spec, now, &(), 3).map_err(|why| why.to_string())?;
//! assert_eq!(best[0].max_cost, 2_000); // 2·10^9 fuel at 1,000 per 10^9
//!
//! // A cap below that price: the book says why nothing fits.
//! let cheap = JobSpec { price_cap: 1_000, ..spec };
//! let why = book.find(&cheap, now, &(), 3).unwrap_err();
//! assert!(why.to_string().contains("cost more than your cap of 1000; the cheapest is 2000"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod book;
pub mod codec;
pub mod eip712;
pub mod error;
pub mod job;
pub mod names;
pub mod offer;
pub mod registration;
pub mod result;
pub mod settlement;
pub mod signed;

pub use book::{
    BookConfig, Funnel, Insertion, Match, NoMatch, Observations, OrderBook, PeerStats, Stage,
};
pub use codec::{Canonical, Extensions};
pub use eip712::{Domain, TypedData};
pub use error::{DecodeError, Eip712Error, OfferError, SignatureError};
pub use job::{
    BlobRef, Comparison, FloatKind, FloatOutput, GpuNeeds, Input, JobSpec, Limits, Requirements,
    VerificationPolicy, job_id,
};
pub use names::{MAX_FILE_NAME, NameError, check_file_name, printable};
pub use offer::{ComputeCapability, Gpu, Hardware, Offer, Prices, ProtocolVersion, Withdrawal};
pub use result::{
    Expected, InvalidResult, OUTPUT_HASH_DOMAIN, Outcome, OutputFiles, Outputs, TrapKind,
    check_commitment, check_outputs, check_result, encode_output, output_hash,
};
pub use settlement::{
    FUEL_PER_GFUEL, ResultCommitment, Ticket, Voucher, check_commit, is_checked, max_cost,
    max_gpu_millis, max_job_value, min_stake_for, ticket_id,
};
pub use signed::{PublicKey, Signable, Signed, Verified};

pub use alloy_primitives::{Address, B256, U256};
