//! Typed errors of the market crate, one enum per operation.

use alloy_primitives::Address;

/// Why bytes could not be decoded into a protocol message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message is bigger than its type allows.
    #[error("message of {len} bytes is over the {max}-byte limit for its kind")]
    Oversized {
        /// Length received.
        len: usize,
        /// Largest length allowed.
        max: usize,
    },
    /// The encoding version byte is not one this build understands.
    #[error("unknown encoding version {0}; this node understands version {v}", v = crate::codec::VERSION)]
    UnknownVersion(u8),
    /// The message is of another kind than expected.
    #[error("expected message kind {expected}, found {found}")]
    WrongKind {
        /// Kind expected.
        expected: u8,
        /// Kind found.
        found: u8,
    },
    /// The bytes end in the middle of a value.
    #[error("message ends in the middle of a value")]
    UnexpectedEnd,
    /// Bytes are left after the message.
    #[error("{0} bytes left after the end of the message")]
    TrailingBytes(usize),
    /// A length or count is over its bound.
    #[error("{what} has {len} entries or bytes, over the limit of {max}")]
    TooLong {
        /// The field.
        what: &'static str,
        /// Length announced.
        len: usize,
        /// Largest length allowed.
        max: usize,
    },
    /// An enum or option tag is unknown.
    #[error("unknown tag {tag} for {what}")]
    BadTag {
        /// The field.
        what: &'static str,
        /// The tag read.
        tag: u8,
    },
    /// An extension record of an even (critical) tag that this build does not know: the
    /// sender needs it understood, so the message is not read without it.
    #[error("unknown critical extension {tag}: this build cannot read the message without it")]
    CriticalExtension {
        /// The record's tag.
        tag: u16,
    },
    /// A field holds a value that is not allowed.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Why it is refused.
        why: &'static str,
    },
}

/// Why an ed25519-signed message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The public key is not a valid ed25519 point.
    #[error("signer key is not a valid ed25519 public key")]
    BadKey,
    /// The signature does not verify for this key and message.
    #[error("bad signature: it does not verify for the claimed signer")]
    BadSignature,
}

/// Why an EIP-712 signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Eip712Error {
    /// The signature is not 65 bytes `r || s || v` with `v` in {27, 28} and a low `s`.
    #[error("malformed signature: {0}")]
    Malformed(&'static str),
    /// The signature recovers to another address than the one expected.
    #[error("signature recovers to {recovered}, expected {expected}")]
    WrongSigner {
        /// Who signed.
        recovered: Address,
        /// Who should have signed.
        expected: Address,
    },
    /// Signing failed (the key could not sign).
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Why an offer was not put in (or taken out of) the order book.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The bytes do not decode.
    #[error("malformed offer: {0}")]
    Decode(#[from] DecodeError),
    /// The signature does not verify.
    #[error("offer signature refused: {0}")]
    Signature(#[from] SignatureError),
    /// The offer's expiry has passed.
    #[error("offer expired at {expires_at} (now {now})")]
    Expired {
        /// Offer expiry, unix seconds.
        expires_at: u64,
        /// Current time, unix seconds.
        now: u64,
    },
    /// The offer claims to live longer than the book accepts.
    #[error("offer expires {ttl} s from now, over the {max} s a book accepts; re-announce instead")]
    TtlTooLong {
        /// Remaining life claimed, seconds.
        ttl: u64,
        /// Longest life accepted, seconds.
        max: u64,
    },
    /// An offer (or withdrawal) with this sequence number or a newer one is already known.
    #[error("sequence {got} is not newer than the {have} already held for this provider")]
    StaleSequence {
        /// Sequence received.
        got: u64,
        /// Sequence held.
        have: u64,
    },
    /// The book is full and the offer expires sooner than anything it could evict.
    #[error("order book full ({capacity} offers) and this offer expires before all of them")]
    BookFull {
        /// Capacity of the book.
        capacity: usize,
    },
    /// The offer's content is not acceptable.
    #[error("invalid offer: {0}")]
    Invalid(&'static str),
}
