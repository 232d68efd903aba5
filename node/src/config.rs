//! The node's configuration (being built).
