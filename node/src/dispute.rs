//! What both parties of a dispute do alike: asking the drawn verifiers to re-run the job (the
//! provider with its result in hand, the buyer without), and naming the escrow's outcomes.
//! The rules themselves are the escrow's (`docs/disputes.md`).

use alloy::primitives::{Address, B256};

use crate::chain::Chain;
use crate::net::{self, JobResult, Network, VerifyReply, VerifyRequest};

/// Sends a disputed job to each drawn verifier whose node key is registered on chain, with
/// the provider's result when it is the provider that asks (`delivery`). Returns the first
/// result a verifier handed back (to a party that asked without one).
pub(crate) async fn ask_verifiers(
    net: &Network,
    chain: &Chain,
    ticket: B256,
    job: B256,
    spec: &sietch_market::JobSpec,
    delivery: Option<JobResult>,
    verifiers: &[Address],
) -> Option<JobResult> {
    let mut delivered = None;
    for v in verifiers {
        let key = match chain.known_account(v) {
            Some(a) => a.node_key,
            None => match chain.account(*v).await {
                Ok(a) => a.node_key,
                Err(_) => continue,
            },
        };
        let Some(peer) = net::peer_id_of(&sietch_market::PublicKey(key)) else {
            continue;
        };
        let req = VerifyRequest {
            ticket_id: ticket,
            job_id: job,
            spec: spec.clone(),
            delivery: delivery.clone().map(Box::new),
        };
        match net.request_verify(peer, req).await {
            Ok(VerifyReply::Accepted) => {}
            Ok(VerifyReply::Delivered(r)) => {
                delivered.get_or_insert(*r);
            }
            Ok(VerifyReply::Refused { message }) => {
                tracing::info!(%v, "verifier refused ticket {ticket}: {message}");
            }
            Err(e) => tracing::warn!(%v, "cannot reach verifier for {ticket}: {e}"),
        }
    }
    delivered
}
