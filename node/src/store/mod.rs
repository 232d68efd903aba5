//! The node's durable state in redb (being built).
