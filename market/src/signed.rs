//! ed25519 signatures over canonical bytes, for offers and other p2p messages.
//!
//! A [`Signed<T>`] is the payload, whose own field names the signer, its extension block
//! (fields of later minor versions, usually none: [`crate::codec::ext`]), plus a 64-byte
//! signature over `T::CONTEXT || 0x00 || canonical(T) || extensions`. The context string
//! separates domains, so a signature on one kind of message is never valid for another; the
//! extensions are signed with the rest, as bytes, so a node that knows none of them still
//! checks the signature and passes them on unchanged.
//! Verification is strict (`verify_strict`): small-order keys and non-canonical
//! signatures are refused.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::codec::ext::KnownExtension;
use crate::codec::{Canonical, Extensions, Kind, Reader, Writer};
use crate::error::{DecodeError, SignatureError};

/// An ed25519 public key: a provider's identity on the network.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The public key of a signing key.
    pub fn of(key: &SigningKey) -> Self {
        Self(key.verifying_key().to_bytes())
    }

    /// The first bytes in hex, for messages meant for people.
    pub fn short(&self) -> String {
        hex::encode(self.0.get(..6).unwrap_or_default())
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A message that a key signs with ed25519.
pub trait Signable: Canonical {
    /// Domain-separation string, unique per message kind.
    const CONTEXT: &'static [u8];
    /// The header kind of the signed envelope.
    const SIGNED_KIND: Kind;
    /// The key that must have signed the message.
    fn signer(&self) -> &PublicKey;
    /// What this build knows of the extension record `tag`: `None` if nothing (an odd tag
    /// is then kept as bytes, an even one refused), else whether `data` is valid.
    fn known_extension(tag: u16, data: &[u8]) -> Option<Result<(), DecodeError>> {
        let _ = (tag, data);
        None
    }
}

/// A payload with its ed25519 signature. Not yet trusted: call [`Signed::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signed<T> {
    /// The message.
    pub payload: T,
    /// The fields later minor versions added, as bytes (empty: none).
    pub extensions: Extensions,
    /// Signature by `payload.signer()`, over the payload and the extensions.
    pub signature: [u8; 64],
}

/// A payload whose signature has been checked. Only [`Signed::verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Verified<T>(Signed<T>);

impl<T> Verified<T> {
    /// The checked message.
    pub fn payload(&self) -> &T {
        &self.0.payload
    }
    /// The signed envelope.
    pub fn signed(&self) -> &Signed<T> {
        &self.0
    }
    /// The signed envelope, by value.
    pub fn into_signed(self) -> Signed<T> {
        self.0
    }
}

/// The bytes an ed25519 key signs for `payload` without extensions.
pub fn signing_bytes<T: Signable>(payload: &T) -> Vec<u8> {
    signing_bytes_extended(payload, &Extensions::new())
}

/// The bytes an ed25519 key signs for `payload` with `extensions`: the context, a zero byte,
/// the payload's canonical bytes (header included) and the extension block.
pub fn signing_bytes_extended<T: Signable>(payload: &T, extensions: &Extensions) -> Vec<u8> {
    let mut w = Writer::new();
    w.fixed(T::CONTEXT);
    w.u8(0);
    w.header(T::KIND);
    write_body(&mut w, payload, extensions);
    w.into_bytes()
}

/// The payload's body and the extension block after it.
fn write_body<T: Canonical>(w: &mut Writer, payload: &T, extensions: &Extensions) {
    if extensions.is_empty() {
        payload.encode_body(w);
    } else {
        payload.encode_body_extended(w);
        extensions.encode(w);
    }
}

impl<T: Signable> Signed<T> {
    /// Signs `payload` with `key`. The payload must name `key`'s public key as its signer,
    /// or the result will not verify.
    pub fn sign(payload: T, key: &SigningKey) -> Self {
        Self::sign_extended(payload, Extensions::new(), key)
    }

    /// Signs `payload` with its `extensions` (the signature covers both).
    pub fn sign_extended(payload: T, extensions: Extensions, key: &SigningKey) -> Self {
        let signature = key
            .sign(&signing_bytes_extended(&payload, &extensions))
            .to_bytes();
        Self {
            payload,
            extensions,
            signature,
        }
    }

    /// Checks the signature against the signer named in the payload.
    pub fn verify(self) -> Result<Verified<T>, SignatureError> {
        self.check()?;
        Ok(Verified(self))
    }

    /// The signer's key and the signed bytes, for batch verification.
    pub fn parts(&self) -> Result<(VerifyingKey, Signature, Vec<u8>), SignatureError> {
        let key = VerifyingKey::from_bytes(&self.payload.signer().0)
            .map_err(|_| SignatureError::BadKey)?;
        Ok((
            key,
            Signature::from_bytes(&self.signature),
            signing_bytes_extended(&self.payload, &self.extensions),
        ))
    }

    fn check(&self) -> Result<(), SignatureError> {
        let (key, sig, msg) = self.parts()?;
        key.verify_strict(&msg, &sig)
            .map_err(|_| SignatureError::BadSignature)
    }

    /// Marks an envelope as verified when its signature was checked elsewhere
    /// (batch verification in this crate).
    pub(crate) fn assume_verified(self) -> Verified<T> {
        Verified(self)
    }

    /// Canonical bytes of the envelope: header, payload body, extension block, signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.header(T::SIGNED_KIND);
        write_body(&mut w, &self.payload, &self.extensions);
        w.fixed(&self.signature);
        w.into_bytes()
    }

    /// Decodes an envelope (the signature is not checked: call [`Signed::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_knowing(bytes, T::known_extension)
    }

    /// Decodes an envelope as a build that knows the extension records `known` knows: with
    /// [`crate::codec::ext::knows_none`], as a node of the first minor version reads it.
    pub fn decode_knowing(bytes: &[u8], known: KnownExtension) -> Result<Self, DecodeError> {
        // 64 signature bytes on top of what the payload may take.
        let max = T::MAX_SIZE + 64;
        if bytes.len() > max {
            return Err(DecodeError::Oversized {
                len: bytes.len(),
                max,
            });
        }
        // The signature is the last 64 bytes, so the payload's body and its extension block
        // are read from exactly the bytes before it: a body whose last part is optional (an
        // offer's legacy extension) knows where it ends, and the block runs to the end.
        let split = bytes
            .len()
            .checked_sub(64)
            .ok_or(DecodeError::UnexpectedEnd)?;
        let (head, tail) = bytes.split_at(split);
        let mut r = Reader::new(head);
        r.header(T::SIGNED_KIND)?;
        let payload = T::decode_body(&mut r)?;
        let extensions = Extensions::decode(&mut r, T::MAX_SIZE, known)?;
        r.finish()?;
        let signature = Reader::new(tail).bytes64()?;
        Ok(Self {
            payload,
            extensions,
            signature,
        })
    }
}
