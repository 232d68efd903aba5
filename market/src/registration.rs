//! The proof that binds a node's ed25519 key to an EVM account on one escrow
//! (`docs/protocol.md` §1.2).
//!
//! `register(nodeKey, proof)` takes any key, since the EVM cannot check an ed25519 signature
//! cheaply; so the binding is checked by every reader instead. `proof` is the node key's
//! signature over [`message`] — the chain, the escrow and the account — so it cannot be
//! replayed for another account, escrow or chain, and nobody can bind a key it does not hold
//! (to pin its own slashes on someone else's reputation, say). A node treats an account whose
//! proof does not verify as unregistered.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::{Address, PublicKey};

/// What the message starts with, so that it can be nothing else a node key signs.
pub const CONTEXT: &[u8] = b"sietch register";

/// The registration message: [`CONTEXT`] ‖ chain id (8 bytes, big-endian) ‖ escrow (20 bytes)
/// ‖ account (20 bytes).
pub fn message(chain_id: u64, escrow: Address, account: Address) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 48);
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(escrow.as_slice());
    m.extend_from_slice(account.as_slice());
    m
}

/// The proof `key` gives for binding itself to `account` on `escrow` of chain `chain_id`.
pub fn prove(key: &SigningKey, chain_id: u64, escrow: Address, account: Address) -> [u8; 64] {
    key.sign(&message(chain_id, escrow, account)).to_bytes()
}

/// Whether `proof` binds `node_key` to `account` on `escrow` of chain `chain_id` (strict
/// verification: no small-order keys, no non-canonical signatures).
pub fn verify(
    node_key: &PublicKey,
    proof: &[u8],
    chain_id: u64,
    escrow: Address,
    account: Address,
) -> bool {
    let Ok(sig) = <[u8; 64]>::try_from(proof) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&node_key.0) else {
        return false;
    };
    key.verify_strict(
        &message(chain_id, escrow, account),
        &Signature::from_bytes(&sig),
    )
    .is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_binds_one_key_to_one_account_on_one_escrow_and_chain() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let node = PublicKey::of(&key);
        let (escrow, me) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let proof = prove(&key, 31_337, escrow, me);
        assert!(verify(&node, &proof, 31_337, escrow, me));
        // Replayed for another account, escrow or chain: nothing.
        assert!(!verify(
            &node,
            &proof,
            31_337,
            escrow,
            Address::repeat_byte(3)
        ));
        assert!(!verify(&node, &proof, 31_337, Address::repeat_byte(3), me));
        assert!(!verify(&node, &proof, 1, escrow, me));
        // Someone else's key, signed by the attacker's own: nothing.
        let attacker = SigningKey::from_bytes(&[8; 32]);
        let forged = prove(&attacker, 31_337, escrow, me);
        assert!(!verify(&node, &forged, 31_337, escrow, me));
        // Not a signature at all.
        assert!(!verify(&node, &[0; 64], 31_337, escrow, me));
        assert!(!verify(&node, &proof[..63], 31_337, escrow, me));
        // The message is pinned byte for byte.
        let m = message(0x0102, escrow, me);
        assert_eq!(m.len(), CONTEXT.len() + 48);
        assert_eq!(
            &m[CONTEXT.len()..CONTEXT.len() + 8],
            &[0, 0, 0, 0, 0, 0, 1, 2]
        );
    }
}
