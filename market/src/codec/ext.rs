//! The extension block: fields that a later minor version adds at the end of a signed message
//! (docs/protocol/encoding.md, "Extensions").
//!
//! A block is zero or more records, each a big-endian `u16` tag and a length-prefixed byte
//! string, in strictly increasing tag order, up to the end of the message (the signature of a
//! signed message follows it, and the decoder knows where the body ends from the message's
//! length). An empty block is no bytes at all, so a message without extensions keeps the bytes
//! it had before extensions existed. A decoder keeps every record as bytes whatever its tag,
//! so re-encoding gives the bytes back and a signature over them verifies even where the
//! decoder knows none of them. Tags are "OK to be odd": a decoder that does not know an odd
//! tag keeps it and goes on; one that does not know an even tag refuses the message
//! ([`DecodeError::CriticalExtension`]).

use super::{Reader, Writer};
use crate::error::DecodeError;

/// Most records one extension block may hold.
pub const MAX_EXTENSIONS: usize = 16;

/// One record of an extension block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Extension {
    /// What the record is: an odd tag may be ignored, an even one must be understood.
    pub tag: u16,
    /// The record's bytes, as the message carried them.
    pub data: Vec<u8>,
}

/// Whether a decoder that does not know `tag` must refuse the message: even tags are critical.
pub fn is_critical(tag: u16) -> bool {
    tag.is_multiple_of(2)
}

/// What a message type says of one extension record: `None` if this build does not know the
/// tag, else whether its bytes are valid.
pub type KnownExtension = fn(u16, &[u8]) -> Option<Result<(), DecodeError>>;

/// A decoder that knows no extension at all: every odd tag kept, every even one refused (what
/// a node of the first minor version does).
pub fn knows_none(_tag: u16, _data: &[u8]) -> Option<Result<(), DecodeError>> {
    None
}

/// The records of an extension block, in strictly increasing tag order (one encoding per
/// value), at most [`MAX_EXTENSIONS`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Extensions(Vec<Extension>);

impl Extensions {
    /// No extensions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the block is empty (it then takes no bytes).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The records, in tag order.
    pub fn iter(&self) -> impl Iterator<Item = &Extension> {
        self.0.iter()
    }

    /// The bytes of the record `tag`, if there is one.
    pub fn get(&self, tag: u16) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|e| e.tag == tag)
            .map(|e| e.data.as_slice())
    }

    /// Sets the record `tag` to `data`, replacing one of that tag and keeping the order;
    /// `false` (and nothing changed) when the block already holds [`MAX_EXTENSIONS`] others.
    pub fn insert(&mut self, tag: u16, data: Vec<u8>) -> bool {
        match self.0.binary_search_by_key(&tag, |e| e.tag) {
            Ok(i) => {
                if let Some(e) = self.0.get_mut(i) {
                    e.data = data;
                }
                true
            }
            Err(_) if self.0.len() >= MAX_EXTENSIONS => false,
            Err(i) => {
                self.0.insert(i, Extension { tag, data });
                true
            }
        }
    }

    /// Writes the block: each record's tag and length-prefixed bytes, in tag order.
    pub fn encode(&self, w: &mut Writer) {
        for e in &self.0 {
            w.u16(e.tag);
            w.bytes(&e.data);
        }
    }

    /// Reads a block up to the end of `r`: at most [`MAX_EXTENSIONS`] records of at most
    /// `max_len` bytes each, tags strictly increasing, each checked by `known` (an unknown even
    /// tag is refused, an unknown odd one kept as bytes).
    pub fn decode(
        r: &mut Reader<'_>,
        max_len: usize,
        known: KnownExtension,
    ) -> Result<Self, DecodeError> {
        let mut out: Vec<Extension> = Vec::new();
        while !r.is_empty() {
            if out.len() >= MAX_EXTENSIONS {
                return Err(DecodeError::TooLong {
                    what: "extension block",
                    len: out.len() + 1,
                    max: MAX_EXTENSIONS,
                });
            }
            let tag = r.u16()?;
            if out.last().is_some_and(|last| last.tag >= tag) {
                return Err(DecodeError::Invalid {
                    what: "extension block",
                    why: "tags not in strictly increasing order",
                });
            }
            let data = r.bytes("extension", max_len)?;
            match known(tag, data) {
                Some(checked) => checked?,
                None if is_critical(tag) => return Err(DecodeError::CriticalExtension { tag }),
                None => {}
            }
            out.push(Extension {
                tag,
                data: data.to_vec(),
            });
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(records: &[(u16, &[u8])]) -> Vec<u8> {
        let mut w = Writer::new();
        for (tag, data) in records {
            w.u16(*tag);
            w.bytes(data);
        }
        w.into_bytes()
    }

    fn decode(b: &[u8], known: KnownExtension) -> Result<Extensions, DecodeError> {
        let mut r = Reader::new(b);
        Extensions::decode(&mut r, 64, known)
    }

    #[test]
    fn unknown_odd_records_are_kept_as_bytes_and_written_back_the_same() {
        let b = block(&[(1, b"abc"), (7, b""), (0x0101, &[9; 10])]);
        let e = decode(&b, knows_none).unwrap();
        assert_eq!(e.get(1), Some(&b"abc"[..]));
        assert_eq!(e.get(7), Some(&[][..]));
        assert_eq!(e.get(3), None);
        let mut w = Writer::new();
        e.encode(&mut w);
        assert_eq!(w.into_bytes(), b);
        assert!(decode(&[], knows_none).unwrap().is_empty());
    }

    #[test]
    fn unknown_even_records_order_and_bounds_are_refused() {
        assert_eq!(
            decode(&block(&[(1, b""), (2, b"x")]), knows_none),
            Err(DecodeError::CriticalExtension { tag: 2 })
        );
        for bad in [block(&[(3, b""), (1, b"")]), block(&[(3, b""), (3, b"")])] {
            assert!(matches!(
                decode(&bad, knows_none),
                Err(DecodeError::Invalid { .. })
            ));
        }
        assert!(matches!(
            decode(&block(&[(1, &[0; 65])]), knows_none),
            Err(DecodeError::TooLong { .. })
        ));
        let many: Vec<(u16, &[u8])> = (0..=MAX_EXTENSIONS as u16)
            .map(|i| (2 * i + 1, &b""[..]))
            .collect();
        assert!(matches!(
            decode(&block(&many), knows_none),
            Err(DecodeError::TooLong { .. })
        ));
        // A record cut short.
        let mut cut = block(&[(1, b"abcd")]);
        cut.pop();
        assert_eq!(decode(&cut, knows_none), Err(DecodeError::UnexpectedEnd));
    }

    #[test]
    fn a_known_record_is_checked_and_a_known_even_one_accepted() {
        fn knows_two(tag: u16, data: &[u8]) -> Option<Result<(), DecodeError>> {
            if tag != 2 {
                return None;
            }
            Some(if data.len() == 1 {
                Ok(())
            } else {
                Err(DecodeError::Invalid {
                    what: "extension 2",
                    why: "not one byte",
                })
            })
        }
        assert!(decode(&block(&[(2, b"x")]), knows_two).is_ok());
        assert!(matches!(
            decode(&block(&[(2, b"xy")]), knows_two),
            Err(DecodeError::Invalid { .. })
        ));
    }

    #[test]
    fn insert_keeps_the_order_replaces_and_stops_at_the_bound() {
        let mut e = Extensions::new();
        assert!(e.insert(5, vec![5]));
        assert!(e.insert(1, vec![1]));
        assert!(e.insert(5, vec![6]));
        let tags: Vec<u16> = e.iter().map(|x| x.tag).collect();
        assert_eq!(tags, [1, 5]);
        assert_eq!(e.get(5), Some(&[6][..]));
        for t in 0..MAX_EXTENSIONS as u16 {
            e.insert(100 + t, vec![]);
        }
        assert_eq!(e.iter().count(), MAX_EXTENSIONS);
        assert!(!e.insert(999, vec![]));
        assert!(e.insert(1, vec![]), "replacing needs no room");
    }
}
