//! The node's protocol version and its compatibility rule (docs/protocol/versions.md).
//!
//! Identify announces `/sietch/MAJOR.MINOR.PATCH`. Nodes of one major version speak to each
//! other whatever their minor and patch: a minor version may add protocols (new
//! request-response protocol ids, negotiated per stream by multistream-select, newest
//! first) and optional fields that older nodes of the same major do without. Another major
//! version, or a peer that is not a Sietch node at all, is refused: disconnected, logged
//! once, and neither dialed nor let in again until its backoff is over.
//!
//! Within a major version, fields are added as extension records at the end of a signed
//! message (`sietch_market::codec::ext`): odd records, which an older node keeps as bytes, are
//! sent to everyone; an even (critical) record would go only to a peer whose minor version
//! reads it ([`Version::reads`]). What each minor version added is listed here.

use std::fmt;

use sietch_market::offer::EXT_PROTOCOL_VERSION;
use sietch_market::{Extensions, ProtocolVersion};

/// This node's protocol version.
pub const CURRENT: Version = Version {
    major: 1,
    minor: 1,
    patch: 0,
};

/// The first version whose offers say which protocol version their provider speaks (the
/// offer's extension record 1, odd).
pub const OFFER_PROTOCOL_VERSION_SINCE: Version = Version {
    major: 1,
    minor: 1,
    patch: 0,
};

/// What identify's protocol version starts with on every Sietch node.
const PREFIX: &str = "/sietch/";

/// A protocol version: `/sietch/MAJOR.MINOR.PATCH` in identify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incompatible changes.
    pub major: u32,
    /// Additions an older node of the same major can do without.
    pub minor: u32,
    /// Fixes that change nothing on the wire.
    pub patch: u32,
}

impl Version {
    /// Reads identify's protocol version; `None` if it is not `/sietch/X.Y.Z` with three
    /// decimal numbers.
    pub fn parse(said: &str) -> Option<Self> {
        let rest = said.strip_prefix(PREFIX)?;
        let mut parts = rest.split('.');
        let mut next = || -> Option<u32> {
            let p = parts.next()?;
            // Decimal digits only: no sign, no spaces, no empty part.
            if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let v = Self {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        parts.next().is_none().then_some(v)
    }

    /// What identify announces: `/sietch/MAJOR.MINOR.PATCH`.
    pub fn identify(&self) -> String {
        format!("{PREFIX}{self}")
    }

    /// Whether a node at this version reads what version `since` added: the same major and a
    /// minor at least `since`'s.
    pub fn reads(&self, since: Version) -> bool {
        self.major == since.major && self.minor >= since.minor
    }

    /// The extension block a provider at this version signs into its offers: its protocol
    /// version from 1.1 on, nothing before (a 1.0 node did not know the record).
    pub fn offer_extensions(&self) -> Extensions {
        let mut e = Extensions::new();
        if self.reads(OFFER_PROTOCOL_VERSION_SINCE) {
            let v = ProtocolVersion {
                major: self.major,
                minor: self.minor,
                patch: self.patch,
            };
            // One record in an empty block always fits.
            e.insert(EXT_PROTOCOL_VERSION, v.to_bytes());
        }
        e
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a peer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Foreign {
    /// A Sietch node of another major version.
    #[error("it speaks Sietch {theirs}, this node {ours}: another major version")]
    OtherMajor {
        /// The peer's version.
        theirs: Version,
        /// This node's.
        ours: Version,
    },
    /// Not a Sietch node (another libp2p program, or a malformed version).
    #[error("not a Sietch node: identify says {said:?}")]
    NotSietch {
        /// What its identify said, cut to 64 characters.
        said: String,
    },
}

/// Whether a peer announcing `said` in identify is one this node (at `ours`) speaks with:
/// its version if so.
pub fn judge(ours: Version, said: &str) -> Result<Version, Foreign> {
    match Version::parse(said) {
        Some(theirs) if theirs.major == ours.major => Ok(theirs),
        Some(theirs) => Err(Foreign::OtherMajor { theirs, ours }),
        None => Err(Foreign::NotSietch {
            said: said.chars().take(64).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    #[test]
    fn versions_are_read_strictly() {
        assert_eq!(Version::parse("/sietch/1.0.0"), Some(v(1, 0, 0)));
        assert_eq!(Version::parse("/sietch/1.12.3"), Some(v(1, 12, 3)));
        for bad in [
            "/sietch/1.0",
            "/sietch/1.0.0.0",
            "/sietch/1.-1.0",
            "/sietch/1.+1.0",
            "/sietch/1..0",
            "/sietch/ 1.0.0",
            "/sietch/1.0.0 ",
            "/sietch/9999999999.0.0",
            "sietch/1.0.0",
            "/ipfs/0.1.0",
            "",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
        assert_eq!(CURRENT.identify(), "/sietch/1.1.0");
        assert_eq!(Version::parse(&CURRENT.identify()), Some(CURRENT));
    }

    #[test]
    fn the_same_major_is_spoken_whatever_the_minor_and_patch() {
        let ours = v(1, 0, 0);
        assert_eq!(judge(ours, "/sietch/1.0.0"), Ok(v(1, 0, 0)));
        assert_eq!(judge(ours, "/sietch/1.0.1"), Ok(v(1, 0, 1)));
        assert_eq!(judge(ours, "/sietch/1.7.0"), Ok(v(1, 7, 0)));
        assert_eq!(judge(v(1, 3, 0), "/sietch/1.0.0"), Ok(v(1, 0, 0)));
    }

    #[test]
    fn offers_say_the_version_from_1_1_on() {
        assert!(v(1, 0, 0).offer_extensions().is_empty());
        assert!(!v(1, 0, 0).reads(OFFER_PROTOCOL_VERSION_SINCE));
        assert!(v(1, 4, 2).reads(OFFER_PROTOCOL_VERSION_SINCE));
        assert!(!v(2, 4, 0).reads(OFFER_PROTOCOL_VERSION_SINCE));
        let e = v(1, 4, 2).offer_extensions();
        let said = e.get(EXT_PROTOCOL_VERSION).map(ProtocolVersion::from_bytes);
        assert_eq!(
            said,
            Some(Ok(ProtocolVersion {
                major: 1,
                minor: 4,
                patch: 2
            }))
        );
        assert!(CURRENT.reads(OFFER_PROTOCOL_VERSION_SINCE));
    }

    #[test]
    fn another_major_or_another_program_is_refused_with_its_reason() {
        let ours = v(1, 0, 0);
        let e = judge(ours, "/sietch/2.0.0").unwrap_err();
        assert_eq!(
            e,
            Foreign::OtherMajor {
                theirs: v(2, 0, 0),
                ours
            }
        );
        assert_eq!(
            e.to_string(),
            "it speaks Sietch 2.0.0, this node 1.0.0: another major version"
        );
        assert!(matches!(
            judge(ours, "/sietch/0.9.0"),
            Err(Foreign::OtherMajor { .. })
        ));
        let e = judge(ours, "ipfs/0.1.0").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"not a Sietch node: identify says "ipfs/0.1.0""#
        );
        let long = "x".repeat(500);
        let Err(Foreign::NotSietch { said }) = judge(ours, &long) else {
            panic!("a long version is not Sietch's");
        };
        assert_eq!(said.len(), 64);
    }
}
