//! Rust bindings for the Sietch escrow contract (`contracts/src`), generated with
//! alloy's `sol!` from the committed forge artifacts.
