//! The canonical binary encoding of protocol messages.
//!
//! Every value has exactly one encoding, so hashes and signatures over encoded bytes are
//! stable across implementations:
//!
//! - integers are fixed-width big-endian (`u8`, `u16`, `u32`, `u64`, `u128`, and 32-byte `U256`);
//! - `bool` is one byte, `0` or `1` (anything else is refused);
//! - byte strings and UTF-8 strings are a `u32` length followed by the bytes;
//! - lists are a `u32` count followed by the items;
//! - `Option` is a tag byte (`0` none, `1` some) followed by the value;
//! - enums are a tag byte followed by the variant's fields;
//! - `f64` is its IEEE-754 bits as a `u64`; NaN is refused so that equal values encode equally.
//!
//! A top-level message starts with a two-byte header: the encoding version
//! ([`VERSION`]) and the message kind ([`Kind`]). Decoding checks both, enforces every
//! length bound before allocating, and refuses trailing bytes. Decoding never panics,
//! whatever the input.
//!
//! A signed message may end with an extension block ([`ext`]): the fields a later minor
//! version adds, which an older decoder keeps as bytes (so its signature still verifies and
//! it re-encodes to the same bytes) and a newer one reads.

pub mod ext;

use alloy_primitives::{Address, B256, U256};

use crate::error::DecodeError;
pub use ext::{Extension, Extensions};

/// The current version of the encoding, the first byte of every message.
pub const VERSION: u8 = 1;

/// The kind of a top-level message, the second byte of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// [`crate::Offer`].
    Offer = 1,
    /// [`crate::Withdrawal`].
    Withdrawal = 2,
    /// [`crate::JobSpec`].
    JobSpec = 3,
    /// [`crate::Ticket`].
    Ticket = 4,
    /// [`crate::ResultCommitment`].
    ResultCommitment = 5,
    /// [`crate::Voucher`].
    Voucher = 6,
    /// A [`crate::Signed`] offer.
    SignedOffer = 7,
    /// A [`crate::Signed`] withdrawal.
    SignedWithdrawal = 8,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Offer,
            2 => Self::Withdrawal,
            3 => Self::JobSpec,
            4 => Self::Ticket,
            5 => Self::ResultCommitment,
            6 => Self::Voucher,
            7 => Self::SignedOffer,
            8 => Self::SignedWithdrawal,
            _ => return None,
        })
    }
}

/// Appends canonical bytes to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Writes a message header.
    pub fn header(&mut self, kind: Kind) {
        self.buf.push(VERSION);
        self.buf.push(kind as u8);
    }

    /// Writes a `u8`.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// Writes a `bool` as one byte.
    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }
    /// Writes a big-endian `u16`.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Writes a big-endian `u32`.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Writes a big-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Writes a big-endian `u128`.
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Writes a 32-byte big-endian `U256`.
    pub fn u256(&mut self, v: &U256) {
        self.buf.extend_from_slice(&v.to_be_bytes::<32>());
    }
    /// Writes an `f64` as its bits (callers guarantee it is not NaN).
    pub fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    /// Writes fixed-size bytes with no length prefix.
    pub fn fixed(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// Writes a 32-byte hash.
    pub fn b256(&mut self, v: &B256) {
        self.fixed(v.as_slice());
    }
    /// Writes a 20-byte address.
    pub fn address(&mut self, v: &Address) {
        self.fixed(v.as_slice());
    }
    /// Writes a length-prefixed byte string.
    pub fn bytes(&mut self, b: &[u8]) {
        // Lengths are bounded far below u32::MAX by the types' own limits, which the
        // decoder enforces; saturating keeps the writer total without a panic path.
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.fixed(b);
    }
    /// Writes a length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    /// Writes a list count.
    pub fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    /// Writes an optional value with a tag byte.
    pub fn option<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) {
        match v {
            None => self.u8(0),
            Some(x) => {
                self.u8(1);
                f(self, x);
            }
        }
    }
}

/// Reads canonical bytes, checking every bound.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Reads and checks a message header.
    pub fn header(&mut self, expected: Kind) -> Result<(), DecodeError> {
        let version = self.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let kind = self.u8()?;
        match Kind::from_u8(kind) {
            Some(k) if k == expected => Ok(()),
            _ => Err(DecodeError::WrongKind {
                expected: expected as u8,
                found: kind,
            }),
        }
    }

    /// Whether every byte was consumed (a message whose last part is optional ends here).
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        let rest = self.buf.len().saturating_sub(self.pos);
        if rest == 0 {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(rest))
        }
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::UnexpectedEnd)?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::UnexpectedEnd)?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// Reads a `u8`.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    /// Reads a `bool`, refusing bytes other than 0 and 1.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::BadTag {
                what: "bool",
                tag: b,
            }),
        }
    }
    /// Reads a big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    /// Reads a big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    /// Reads a big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    /// Reads a big-endian `u128`.
    pub fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_be_bytes(self.array()?))
    }
    /// Reads a 32-byte big-endian `U256`.
    pub fn u256(&mut self) -> Result<U256, DecodeError> {
        Ok(U256::from_be_bytes(self.array::<32>()?))
    }
    /// Reads an `f64`, refusing NaN (it has many encodings).
    pub fn f64(&mut self, what: &'static str) -> Result<f64, DecodeError> {
        let v = f64::from_bits(self.u64()?);
        if v.is_nan() {
            Err(DecodeError::Invalid { what, why: "NaN" })
        } else {
            Ok(v)
        }
    }
    /// Reads a 32-byte hash.
    pub fn b256(&mut self) -> Result<B256, DecodeError> {
        Ok(B256::from(self.array::<32>()?))
    }
    /// Reads a 20-byte address.
    pub fn address(&mut self) -> Result<Address, DecodeError> {
        Ok(Address::from(self.array::<20>()?))
    }
    /// Reads a 32-byte array.
    pub fn bytes32(&mut self) -> Result<[u8; 32], DecodeError> {
        self.array()
    }
    /// Reads a 64-byte array.
    pub fn bytes64(&mut self) -> Result<[u8; 64], DecodeError> {
        self.array()
    }
    /// Reads a length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError::TooLong { what, len: n, max });
        }
        self.take(n)
    }
    /// Reads a length-prefixed UTF-8 string of at most `max` bytes.
    pub fn string(&mut self, what: &'static str, max: usize) -> Result<String, DecodeError> {
        let b = self.bytes(what, max)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Invalid {
                what,
                why: "not UTF-8",
            })
    }
    /// Reads a list of at most `max` items, each with `f`.
    pub fn list<T>(
        &mut self,
        what: &'static str,
        max: usize,
        mut f: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError::TooLong { what, len: n, max });
        }
        // The bound above keeps this allocation small whatever the input says.
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(f(self)?);
        }
        Ok(out)
    }
    /// Reads an optional value.
    pub fn option<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            tag => Err(DecodeError::BadTag { what, tag }),
        }
    }
}

/// A protocol message with a canonical encoding.
pub trait Canonical: Sized {
    /// The message kind written in the header.
    const KIND: Kind;
    /// The largest encoding accepted, header included.
    const MAX_SIZE: usize;

    /// Writes the body (everything after the header).
    fn encode_body(&self, w: &mut Writer);
    /// Writes the body when an extension block follows it. A message whose last fields are
    /// optional (an offer's legacy extension) writes them here even when they say nothing, so
    /// that the decoder does not read the block's first record as them.
    fn encode_body_extended(&self, w: &mut Writer) {
        self.encode_body(w);
    }
    /// Reads the body (everything after the header).
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// The canonical bytes, header included.
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.header(Self::KIND);
        self.encode_body(&mut w);
        w.into_bytes()
    }

    /// Decodes canonical bytes, refusing anything over [`Self::MAX_SIZE`], a wrong header,
    /// out-of-bound lengths, invalid values and trailing bytes.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > Self::MAX_SIZE {
            return Err(DecodeError::Oversized {
                len: bytes.len(),
                max: Self::MAX_SIZE,
            });
        }
        let mut r = Reader::new(bytes);
        r.header(Self::KIND)?;
        let v = Self::decode_body(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}
