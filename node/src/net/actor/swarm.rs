//! The swarm: its transports (TCP, QUIC and the relay client; or libp2p's memory transport)
//! around the node's behaviour.

use std::sync::Arc;

use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::{Swarm, Transport, identity, noise, tcp, yamux};

use crate::net::NetError;
use crate::net::behaviour::Behaviour;
use crate::net::budget::Guard;
use crate::net::config::{NetConfig, TransportKind};

fn setup<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> NetError {
    move |e| NetError::Setup(format!("{what}: {e}"))
}

pub(super) fn build(
    key: identity::Keypair,
    cfg: &NetConfig,
    guard: &Arc<Guard>,
) -> Result<Swarm<Behaviour>, NetError> {
    let idle = cfg.idle_timeout;
    match cfg.transport {
        TransportKind::Real => {
            let tcp = libp2p::SwarmBuilder::with_existing_identity(key)
                .with_tokio()
                .with_tcp(
                    tcp::Config::default().nodelay(true),
                    noise::Config::new,
                    yamux::Config::default,
                )
                .map_err(setup("tcp"))?;
            // Without the `quic` feature (the demo's build) a node runs TCP only.
            #[cfg(feature = "quic")]
            let tcp = tcp.with_quic();
            Ok(tcp
                .with_relay_client(noise::Config::new, yamux::Config::default)
                .map_err(setup("relay client"))?
                .with_behaviour(|key, relay| {
                    Behaviour::new(key, relay, cfg, guard)
                        .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
                })
                .map_err(setup("behaviour"))?
                .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
                .build())
        }
        TransportKind::Memory => Ok(libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_other_transport(|key| {
                Ok(MemoryTransport::default()
                    .upgrade(Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default()))
            })
            .map_err(setup("memory transport"))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(setup("relay client"))?
            .with_behaviour(|key, relay| {
                Behaviour::new(key, relay, cfg, guard)
                    .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .map_err(setup("behaviour"))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build()),
    }
}
