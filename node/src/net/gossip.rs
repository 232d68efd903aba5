//! Offer gossip: topics per GPU class, gossipsub's configuration and peer scoring, and the
//! validation every offer passes before this node forwards it.

use std::time::Duration;

use libp2p::{PeerId, gossipsub, identity};
use sietch_market::codec::Kind;
use sietch_market::{Offer, OfferError, PublicKey, Signed, Withdrawal};

use super::config::NetConfig;

/// Version of the offer topics: a change of the offer encoding moves to new topics.
const TOPIC_PREFIX: &str = "sietch/offers/1/";

/// Largest gossip message accepted: a signed offer or withdrawal.
pub const MAX_GOSSIP_MESSAGE: usize = 16 * 1024;
/// Largest gossip frame read off the wire. Above [`MAX_GOSSIP_MESSAGE`] on purpose: an
/// oversized offer is read, judged invalid and counted against the peer that sent it.
const MAX_GOSSIP_FRAME: usize = 64 * 1024;

/// A class of offers with its own gossip topic, so that a node can follow only the offers
/// it may buy and the network grows without every node seeing every offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OfferClass {
    /// No GPU.
    Cpu,
    /// GPUs of compute capability below 8 (Volta, Turing and older).
    GpuSm7,
    /// Compute capability 8.x (Ampere, Ada).
    GpuSm8,
    /// Compute capability 9 and newer (Hopper, Blackwell).
    GpuSm9Plus,
}

impl OfferClass {
    /// Every class, in order.
    pub const ALL: [Self; 4] = [Self::Cpu, Self::GpuSm7, Self::GpuSm8, Self::GpuSm9Plus];

    /// The class of an offer: that of its most capable GPU, or CPU.
    pub fn of(offer: &Offer) -> Self {
        let best = offer
            .hardware
            .gpus
            .iter()
            .map(|g| g.compute_capability.major)
            .max();
        match best {
            None => Self::Cpu,
            Some(m) if m < 8 => Self::GpuSm7,
            Some(8) => Self::GpuSm8,
            Some(_) => Self::GpuSm9Plus,
        }
    }

    /// The class's short name, as in config files and topics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::GpuSm7 => "gpu-sm7",
            Self::GpuSm8 => "gpu-sm8",
            Self::GpuSm9Plus => "gpu-sm9plus",
        }
    }

    /// Parses a short name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The gossip topic of the class.
    pub fn topic(self) -> gossipsub::IdentTopic {
        gossipsub::IdentTopic::new(format!("{TOPIC_PREFIX}{}", self.name()))
    }
}

/// Why gossipsub could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum GossipError {
    /// The gossipsub configuration was refused.
    #[error("gossipsub config: {0}")]
    Config(#[source] gossipsub::ConfigBuilderError),
    /// The behaviour could not be built from it.
    #[error("gossipsub: {0}")]
    Behaviour(&'static str),
    /// The peer scoring parameters were refused.
    #[error("gossipsub scoring: {0}")]
    Scoring(String),
    /// An offer topic could not be subscribed to.
    #[error("subscribe to {class}: {error}")]
    Subscribe {
        /// The offer class's name.
        class: &'static str,
        /// Why gossipsub refused.
        #[source]
        error: gossipsub::SubscriptionError,
    },
}

/// Gossipsub configured for offers: validated by the node before forwarding, identified by
/// content, and scored so that a peer delivering invalid offers is graylisted.
///
/// Envelopes are anonymous (no author, sequence number or envelope signature): every offer
/// and withdrawal is signed by its provider's key, which is what the book checks, so a
/// gossipsub signature by the same key would only double the signature work of every node
/// for every copy (it halved ingest; see `docs/benchmarks.md`). Who forwarded a message is
/// still known (`propagation_source`) and is who gets penalized for an invalid one.
pub(crate) fn behaviour(cfg: &NetConfig) -> Result<gossipsub::Behaviour, GossipError> {
    let config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(cfg.gossip_heartbeat)
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .max_transmit_size(MAX_GOSSIP_FRAME)
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
        })
        .duplicate_cache_time(Duration::from_secs(120))
        .build()
        .map_err(GossipError::Config)?;
    let mut gs = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)
        .map_err(GossipError::Behaviour)?;

    let mut params = gossipsub::PeerScoreParams::default();
    for class in OfferClass::ALL {
        params.topics.insert(
            class.topic().hash(),
            gossipsub::TopicScoreParams {
                topic_weight: 1.0,
                // Each invalid offer costs the square of the count: a few are forgiven
                // (clock skew, a race with a withdrawal), a flood is not.
                invalid_message_deliveries_weight: -10.0,
                invalid_message_deliveries_decay: 0.9,
                // Delivery-rate penalties assume steady traffic, which offers are not.
                mesh_message_deliveries_weight: 0.0,
                mesh_failure_penalty_weight: 0.0,
                ..Default::default()
            },
        );
    }
    gs.with_peer_score(params, thresholds())
        .map_err(GossipError::Scoring)?;

    for class in &cfg.offer_classes {
        gs.subscribe(&class.topic())
            .map_err(|error| GossipError::Subscribe {
                class: class.name(),
                error,
            })?;
    }
    Ok(gs)
}

/// Score thresholds: below `graylist` a peer's messages are ignored entirely.
pub(crate) fn thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    }
}

/// A gossip message, decoded.
// Each one is decoded, checked and moved on at once; boxing the offer (the larger since a
// signed message carries its extension block) would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Gossiped {
    Offer(Signed<Offer>),
    Withdrawal(Signed<Withdrawal>),
}

/// Why a gossip message was refused before its signature was checked.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Malformed, forged or otherwise provably bad: penalize whoever forwarded it.
    Invalid(String),
    /// Not useful but not provably bad (stale, late, a full book): drop without penalty.
    /// (An offer of an unregistered key is dropped the same way and costs its forwarder a
    /// quarter strike: see `score.rs`.)
    Ignore(String),
}

/// Decodes a gossip message and checks what can be checked without its signature: the
/// kind and the size.
pub(crate) fn decode(data: &[u8]) -> Result<Gossiped, Refusal> {
    if data.len() > MAX_GOSSIP_MESSAGE {
        return Err(Refusal::Invalid(format!(
            "{} bytes, over the {MAX_GOSSIP_MESSAGE}-byte limit",
            data.len()
        )));
    }
    match data.get(1) {
        Some(&k) if k == Kind::SignedOffer as u8 => Signed::<Offer>::decode(data)
            .map(Gossiped::Offer)
            .map_err(|e| Refusal::Invalid(format!("malformed offer: {e}"))),
        Some(&k) if k == Kind::SignedWithdrawal as u8 => Signed::<Withdrawal>::decode(data)
            .map(Gossiped::Withdrawal)
            .map_err(|e| Refusal::Invalid(format!("malformed withdrawal: {e}"))),
        _ => Err(Refusal::Invalid("not an offer or withdrawal".into())),
    }
}

/// The libp2p peer id of a provider key (both are the same ed25519 key).
pub fn peer_id_of(key: &PublicKey) -> Option<PeerId> {
    let pk = identity::ed25519::PublicKey::try_from_bytes(&key.0).ok()?;
    Some(identity::PublicKey::from(pk).to_peer_id())
}

/// How an order-book refusal is judged: provably bad offers are invalid, offers that are
/// merely late or already superseded are ignored.
pub(crate) fn judge(err: &OfferError, now: u64) -> Refusal {
    match err {
        OfferError::Expired { expires_at, .. } if now.saturating_sub(*expires_at) <= 60 => {
            Refusal::Ignore(err.to_string())
        }
        OfferError::StaleSequence { .. } | OfferError::BookFull { .. } => {
            Refusal::Ignore(err.to_string())
        }
        _ => Refusal::Invalid(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip() {
        for c in OfferClass::ALL {
            assert_eq!(OfferClass::parse(c.name()), Some(c));
        }
        assert_eq!(OfferClass::parse("gpu"), None);
    }

    #[test]
    fn garbage_is_invalid_not_ignored() {
        assert!(matches!(decode(&[1, 7, 0]), Err(Refusal::Invalid(_))));
        assert!(matches!(decode(&[]), Err(Refusal::Invalid(_))));
        let big = vec![0u8; MAX_GOSSIP_MESSAGE + 1];
        assert!(matches!(decode(&big), Err(Refusal::Invalid(_))));
    }
}
