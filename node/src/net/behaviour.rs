//! The node's libp2p behaviour: every protocol it speaks, configured in one place.

use std::sync::Arc;
use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, allow_block_list, autonat, connection_limits, dcutr, identify, identity, kad,
    mdns, ping, relay, request_response,
};

use super::blob_stream::BLOB_STREAM_PROTOCOL;
use super::blob_stream::streams::Streams;
use super::budget::Guard;
use super::config::NetConfig;
use super::dial_cap::DialCap;
use super::doorman::{self, Doorman};
use super::gossip;
use super::gossip_streams::Gossip;
use super::guarded::{GuardedCodec, Peered};
use super::rpc::Rr;
use super::wire::{
    BLOB_PROTOCOL, BlobRequest, JOB_PROTOCOL, JobRequest, PAY_PROTOCOL, Payment, RESULT_PROTOCOL,
    ResultMessage, VERIFY_PROTOCOL, VerifyRequest,
};

/// Kademlia's protocol name, so that the DHT is Sietch's own.
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/sietch/kad/1.0.0");

/// Incoming connections beyond `max_incoming` that `connection_limits` lets through while
/// the doorman's evictions close.
const EVICTION_SLACK: u32 = 16;

/// Why the behaviour could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum BehaviourError {
    /// mDNS could not start.
    #[error("mDNS: {0}")]
    Mdns(#[source] std::io::Error),
    /// Gossipsub could not be set up.
    #[error(transparent)]
    Gossip(#[from] gossip::GossipError),
}

/// All the protocols of a node.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Peers cut off for misbehaving; listed first so their connections are denied first.
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Incoming connections per IP address, and eviction of the least useful incoming
    /// connection when full; before `limits`, which would refuse the newcomer instead.
    pub(crate) doorman: Doorman,
    /// Bounds on connections, in and out and per peer.
    pub(crate) limits: connection_limits::Behaviour,
    /// No dial started while the outgoing limit is reached (not after a wasted handshake).
    pub(crate) dial_cap: DialCap,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) gossipsub: Gossip,
    pub(crate) autonat: autonat::Behaviour,
    pub(crate) relay_server: Toggle<relay::Behaviour>,
    pub(crate) relay_client: relay::client::Behaviour,
    pub(crate) dcutr: dcutr::Behaviour,
    pub(crate) job: Rr<JobRequest>,
    pub(crate) result: Rr<ResultMessage>,
    pub(crate) blob: Rr<BlobRequest>,
    /// Whole blobs over one stream (`NetConfig::blob_stream`).
    pub(crate) blob_stream: Toggle<Streams>,
    pub(crate) pay: Rr<Payment>,
    pub(crate) verify: Rr<VerifyRequest>,
}

impl Behaviour {
    /// Builds the behaviour for `key` with the relay client the swarm builder made.
    pub(crate) fn new(
        key: &identity::Keypair,
        relay_client: relay::client::Behaviour,
        cfg: &NetConfig,
        guard: &Arc<Guard>,
    ) -> Result<Self, BehaviourError> {
        let peer_id = key.public().to_peer_id();

        let identify = identify::Behaviour::new(
            identify::Config::new(cfg.identify_version(), key.public())
                .with_agent_version(format!("sietch/{}", env!("CARGO_PKG_VERSION"))),
        );

        let mut kad_cfg = kad::Config::new(KAD_PROTOCOL);
        kad_cfg.set_query_timeout(Duration::from_secs(30));
        let mut kad =
            kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_cfg);
        kad.set_mode(Some(kad::Mode::Server));

        let mdns = if cfg.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(BehaviourError::Mdns)?,
            )
        } else {
            None
        };

        let gossipsub = gossip::behaviour(cfg)?;

        let autonat = autonat::Behaviour::new(
            peer_id,
            autonat::Config {
                only_global_ips: cfg.autonat_only_global,
                boot_delay: Duration::from_secs(5),
                ..Default::default()
            },
        );

        let relay_server = cfg
            .relay_server
            .then(|| relay::Behaviour::new(peer_id, relay::Config::default()));

        let rr = |timeout: Duration, streams: usize| {
            request_response::Config::default()
                .with_request_timeout(timeout)
                .with_max_concurrent_streams(streams)
        };
        fn protocol<Req, Resp>(
            p: StreamProtocol,
            cfg: request_response::Config,
            guard: &Arc<Guard>,
        ) -> Peered<GuardedCodec<Req, Resp>>
        where
            GuardedCodec<Req, Resp>:
                request_response::Codec<Protocol = StreamProtocol> + Clone + Send + 'static,
        {
            Peered::new(
                request_response::Behaviour::with_codec(
                    GuardedCodec::new(guard.clone()),
                    [(p, request_response::ProtocolSupport::Full)],
                    cfg,
                ),
                guard.clone(),
            )
        }
        let cfg_rr = || rr(cfg.request_timeout, cfg.max_concurrent_streams);

        Ok(Self {
            blocked: allow_block_list::Behaviour::default(),
            doorman: Doorman::new(doorman::Limits {
                max_incoming: cfg.max_incoming,
                max_pending_per_ip: cfg.max_pending_per_ip,
                max_incoming_per_ip: cfg.max_incoming_per_ip,
            }),
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established_outgoing(Some(cfg.max_outgoing))
                    // The doorman holds incoming connections to `max_incoming`, closing the
                    // least useful for a newcomer; this leaves room for those closing.
                    .with_max_established_incoming(Some(
                        cfg.max_incoming.saturating_add(EVICTION_SLACK),
                    ))
                    .with_max_established_per_peer(Some(cfg.max_per_peer))
                    .with_max_pending_incoming(Some(cfg.max_incoming)),
            ),
            dial_cap: DialCap::new(cfg.max_outgoing),
            identify,
            ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(15))),
            kad,
            mdns: mdns.into(),
            gossipsub: Gossip::new(gossipsub),
            autonat,
            relay_server: relay_server.into(),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer_id),
            job: protocol(JOB_PROTOCOL, cfg_rr(), guard),
            result: protocol(RESULT_PROTOCOL, cfg_rr(), guard),
            blob: protocol(BLOB_PROTOCOL, cfg_rr(), guard),
            blob_stream: cfg
                .blob_stream
                .then(|| Streams::new(BLOB_STREAM_PROTOCOL))
                .into(),
            pay: protocol(PAY_PROTOCOL, cfg_rr(), guard),
            verify: protocol(VERIFY_PROTOCOL, cfg_rr(), guard),
        })
    }
}
