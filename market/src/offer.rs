//! A provider's offer: what it has, what it charges, how long the offer holds.

use alloy_primitives::Address;

use crate::codec::{Canonical, Kind, Reader, Writer};
use crate::error::DecodeError;
use crate::job::BlobRef;
use crate::signed::{PublicKey, Signable, Signed};

/// Longest GPU model, driver, feature or address string, in bytes.
pub const MAX_NAME: usize = 256;
/// Most GPUs one offer may list.
pub const MAX_GPUS: usize = 16;
/// Most runtime features one offer may list.
pub const MAX_FEATURES: usize = 32;
/// Most listen addresses one offer may list.
pub const MAX_ADDRESSES: usize = 16;
/// Most held blobs one offer may name ([`Offer::cached_blobs`]).
pub const MAX_CACHED_BLOBS: usize = 8;
/// Smallest blob an offer names as held: 16 MiB. Smaller blobs cost little to send, and
/// naming them would only lengthen the offer.
pub const LARGE_BLOB_BYTES: u64 = 16 << 20;

/// A CUDA compute capability, such as 8.0 for an A100 or 9.0 for an H100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ComputeCapability {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
}

impl ComputeCapability {
    /// A capability `major.minor`.
    pub const fn new(major: u8, minor: u8) -> Self {
        Self { major, minor }
    }
}

impl std::fmt::Display for ComputeCapability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// One GPU of a provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gpu {
    /// Model name as the driver reports it, e.g. `NVIDIA H100 80GB HBM3`.
    pub model: String,
    /// Device memory in bytes.
    pub memory_bytes: u64,
    /// Compute capability.
    pub compute_capability: ComputeCapability,
    /// Driver version, e.g. `550.54.15`.
    pub driver: String,
}

/// The hardware an offer sells time on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Hardware {
    /// CPU cores a job may use.
    pub cpu_cores: u16,
    /// Memory a job may use, in bytes.
    pub memory_bytes: u64,
    /// The GPUs, in device order.
    pub gpus: Vec<Gpu>,
}

/// What a provider charges, in the settlement token's base units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Prices {
    /// Price per 10^9 units of wasm fuel.
    pub per_gfuel: u128,
    /// Price per second of GPU time.
    pub per_gpu_second: u128,
}

/// A provider's signed advertisement: gossiped, kept in every node's order book until it
/// expires or a newer sequence number replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Offer {
    /// The provider's ed25519 key (its libp2p identity); the offer is signed with it.
    pub provider: PublicKey,
    /// The provider's EVM account, bound to `provider` on chain by `register`.
    pub evm_address: Address,
    /// Hardware on sale.
    pub hardware: Hardware,
    /// Runtime features, e.g. `gpu`, `nvrtc`, `simd`.
    pub features: Vec<String>,
    /// Prices.
    pub prices: Prices,
    /// Stake the provider has on chain, in token base units.
    pub stake: u128,
    /// libp2p multiaddresses the provider listens on.
    pub addresses: Vec<String>,
    /// Increases with every new version of the provider's offer.
    pub sequence: u64,
    /// Unix seconds after which the offer is void.
    pub expires_at: u64,
    /// The largest single blob (module, stdin or input file) the provider takes, in bytes;
    /// 0 when the offer does not say (offers from before this field).
    pub max_input_bytes: u64,
    /// Large blobs (at least [`LARGE_BLOB_BYTES`] each) the provider holds now, most
    /// recently used first, at most [`MAX_CACHED_BLOBS`], no hash twice: a job that reads
    /// them need not send them (matching prefers such providers at equal price).
    pub cached_blobs: Vec<BlobRef>,
}

impl Offer {
    /// Whether the offer carries the extension after `expires_at` (see the encoding).
    fn has_extension(&self) -> bool {
        self.max_input_bytes != 0 || !self.cached_blobs.is_empty()
    }

    /// How many bytes of `blobs` this offer names as held (each hash counted once, only when
    /// the size agrees).
    pub fn held_bytes<'a>(&self, blobs: impl IntoIterator<Item = &'a BlobRef>) -> u64 {
        let mut seen: Vec<&BlobRef> = Vec::new();
        let mut held = 0u64;
        for b in blobs {
            if self.cached_blobs.contains(b) && !seen.contains(&b) {
                seen.push(b);
                held = held.saturating_add(b.size);
            }
        }
        held
    }
}

fn encode_gpu(w: &mut Writer, g: &Gpu) {
    w.str(&g.model);
    w.u64(g.memory_bytes);
    w.u8(g.compute_capability.major);
    w.u8(g.compute_capability.minor);
    w.str(&g.driver);
}

fn decode_gpu(r: &mut Reader<'_>) -> Result<Gpu, DecodeError> {
    Ok(Gpu {
        model: r.string("gpu model", MAX_NAME)?,
        memory_bytes: r.u64()?,
        compute_capability: ComputeCapability::new(r.u8()?, r.u8()?),
        driver: r.string("gpu driver", MAX_NAME)?,
    })
}

impl Offer {
    /// The body, with the legacy extension written when `tail` (it says something, or an
    /// extension block follows).
    fn write(&self, w: &mut Writer, tail: bool) {
        w.fixed(&self.provider.0);
        w.address(&self.evm_address);
        w.u16(self.hardware.cpu_cores);
        w.u64(self.hardware.memory_bytes);
        w.count(self.hardware.gpus.len());
        for g in &self.hardware.gpus {
            encode_gpu(w, g);
        }
        w.count(self.features.len());
        for f in &self.features {
            w.str(f);
        }
        w.u128(self.prices.per_gfuel);
        w.u128(self.prices.per_gpu_second);
        w.u128(self.stake);
        w.count(self.addresses.len());
        for a in &self.addresses {
            w.str(a);
        }
        w.u64(self.sequence);
        w.u64(self.expires_at);
        // The legacy extension (docs/protocol.md §2.1): written only when it says something
        // (or an extension block follows), so an offer without it has the bytes it had before
        // the extension existed.
        if tail {
            w.u64(self.max_input_bytes);
            w.count(self.cached_blobs.len());
            for b in &self.cached_blobs {
                w.b256(&b.hash);
                w.u64(b.size);
            }
        }
    }
}

impl Canonical for Offer {
    const KIND: Kind = Kind::Offer;
    const MAX_SIZE: usize = 16 * 1024;

    fn encode_body(&self, w: &mut Writer) {
        self.write(w, self.has_extension());
    }

    fn encode_body_extended(&self, w: &mut Writer) {
        self.write(w, true);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut offer = Self {
            provider: PublicKey(r.bytes32()?),
            evm_address: r.address()?,
            hardware: Hardware {
                cpu_cores: r.u16()?,
                memory_bytes: r.u64()?,
                gpus: r.list("gpus", MAX_GPUS, decode_gpu)?,
            },
            features: r.list("features", MAX_FEATURES, |r| r.string("feature", MAX_NAME))?,
            prices: Prices {
                per_gfuel: r.u128()?,
                per_gpu_second: r.u128()?,
            },
            stake: r.u128()?,
            addresses: r.list("addresses", MAX_ADDRESSES, |r| {
                r.string("address", MAX_NAME)
            })?,
            sequence: r.u64()?,
            expires_at: r.u64()?,
            max_input_bytes: 0,
            cached_blobs: Vec::new(),
        };
        // The body ends here (an offer without the extension), or the extension follows.
        if r.is_empty() {
            return Ok(offer);
        }
        offer.max_input_bytes = r.u64()?;
        offer.cached_blobs = r.list("cached blobs", MAX_CACHED_BLOBS, |r| {
            Ok(BlobRef {
                hash: r.b256()?,
                size: r.u64()?,
            })
        })?;
        if !offer.has_extension() && r.is_empty() {
            // One encoding per value: an empty legacy extension is written as none, unless an
            // extension block follows it (a signed offer's, docs/protocol/encoding.md).
            return Err(DecodeError::Invalid {
                what: "offer extension",
                why: "empty (an offer without one ends at its expiry)",
            });
        }
        for (i, b) in offer.cached_blobs.iter().enumerate() {
            if b.size < LARGE_BLOB_BYTES {
                return Err(DecodeError::Invalid {
                    what: "cached blob",
                    why: "smaller than 16 MiB",
                });
            }
            if offer.cached_blobs.iter().take(i).any(|o| o.hash == b.hash) {
                return Err(DecodeError::Invalid {
                    what: "cached blob",
                    why: "named twice",
                });
            }
        }
        Ok(offer)
    }
}

impl Signable for Offer {
    const CONTEXT: &'static [u8] = b"sietch/v1/offer";
    const SIGNED_KIND: Kind = Kind::SignedOffer;

    fn signer(&self) -> &PublicKey {
        &self.provider
    }

    fn known_extension(tag: u16, data: &[u8]) -> Option<Result<(), DecodeError>> {
        (tag == EXT_PROTOCOL_VERSION).then(|| ProtocolVersion::from_bytes(data).map(|_| ()))
    }
}

/// The offer's extension record that says which protocol version the provider speaks
/// ([`ProtocolVersion`]); odd, so a node that does not know it keeps it and goes on. Added by
/// version 1.1.
pub const EXT_PROTOCOL_VERSION: u16 = 1;

/// The protocol version a provider speaks, `MAJOR.MINOR.PATCH` as its identify announces it
/// (`/sietch/1.1.0`), carried in its offer (extension [`EXT_PROTOCOL_VERSION`]: three
/// big-endian `u32`, 12 bytes). A buyer learns from it, before it connects, which minor
/// version's messages and extensions the provider reads; people see a rolling upgrade spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    /// Incompatible changes.
    pub major: u32,
    /// Additions an older node of the same major can do without.
    pub minor: u32,
    /// Fixes that change nothing on the wire.
    pub patch: u32,
}

impl ProtocolVersion {
    /// The record's 12 bytes.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.major);
        w.u32(self.minor);
        w.u32(self.patch);
        w.into_bytes()
    }

    /// Reads the record's bytes: exactly three `u32`.
    pub fn from_bytes(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != 12 {
            return Err(DecodeError::Invalid {
                what: "offer's protocol version (extension 1)",
                why: "not 12 bytes",
            });
        }
        let mut r = Reader::new(b);
        Ok(Self {
            major: r.u32()?,
            minor: r.u32()?,
            patch: r.u32()?,
        })
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Signed<Offer> {
    /// The protocol version the provider says it speaks (extension [`EXT_PROTOCOL_VERSION`]);
    /// `None` for an offer of a provider of version 1.0, which does not say.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.extensions
            .get(EXT_PROTOCOL_VERSION)
            .and_then(|b| ProtocolVersion::from_bytes(b).ok())
    }
}

/// A provider's signed notice that its offers up to `sequence` are withdrawn (sent on
/// shutdown, so buyers stop picking a node that is going away).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Withdrawal {
    /// The provider withdrawing.
    pub provider: PublicKey,
    /// Every offer of this provider with this sequence or lower is void.
    pub sequence: u64,
}

impl Canonical for Withdrawal {
    const KIND: Kind = Kind::Withdrawal;
    const MAX_SIZE: usize = 64;

    fn encode_body(&self, w: &mut Writer) {
        w.fixed(&self.provider.0);
        w.u64(self.sequence);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            provider: PublicKey(r.bytes32()?),
            sequence: r.u64()?,
        })
    }
}

impl Signable for Withdrawal {
    const CONTEXT: &'static [u8] = b"sietch/v1/withdrawal";
    const SIGNED_KIND: Kind = Kind::SignedWithdrawal;

    fn signer(&self) -> &PublicKey {
        &self.provider
    }
}
