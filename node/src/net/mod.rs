//! The node's libp2p network actor (being built).
