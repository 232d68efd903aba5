//! What happens in a node, as one stream of events: `sietch node run` prints each as a line
//! (first word first, so scripts and tests can follow a node), the HTTP API streams them as
//! server-sent events, and the devnet turns them into its progress display.
//!
//! The stream is a bounded broadcast: a listener that falls behind loses the oldest events
//! (and is told how many), it never slows the node down.

use sietch_market::printable;
use std::fmt;

use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for a listener that falls behind, at most.
const CAPACITY: usize = 4096;

/// Something that happened in the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node's identity.
    Peer {
        /// libp2p peer id.
        peer: String,
    },
    /// The HTTP API listens.
    Api {
        /// `host:port`.
        address: String,
    },
    /// A listen address is known.
    Listening {
        /// The multiaddress.
        address: String,
    },
    /// Started and listening.
    Ready,
    /// A connection opened.
    Connected {
        /// The peer.
        peer: String,
        /// Its address (`/p2p-circuit` in it: relayed).
        address: String,
    },
    /// The last connection to a peer closed.
    Disconnected {
        /// The peer.
        peer: String,
    },
    /// A hole punch ended.
    HolePunch {
        /// The peer.
        peer: String,
        /// Whether a direct connection was made.
        ok: bool,
        /// What happened.
        detail: String,
    },
    /// A peer was cut off for forwarding invalid offers.
    Banned {
        /// The peer.
        peer: String,
    },
    /// The node is registered and staked on chain.
    Registered {
        /// EVM address.
        account: String,
        /// Stake, token base units.
        stake: String,
    },
    /// The provider announced its offer.
    Announced {
        /// The offer's sequence number.
        sequence: u64,
    },
    /// The provider withdrew its offer.
    Withdrew {
        /// The withdrawal's sequence number.
        sequence: u64,
    },
    /// Provider: a job was accepted.
    Accepted {
        /// The job.
        job: String,
        /// The buyer's node.
        peer: String,
    },
    /// Provider: a job was refused.
    Refused {
        /// The job.
        job: String,
        /// Why.
        reason: String,
    },
    /// Provider: a job ran.
    Ran {
        /// The job.
        job: String,
        /// How it ended.
        outcome: String,
        /// Fuel used.
        fuel: u64,
        /// What it charges, token base units.
        amount: String,
    },
    /// Provider: a job failed before it could run (a missing blob, a bad module).
    JobFailed {
        /// The job.
        job: String,
        /// Why.
        reason: String,
    },
    /// Provider: the result reached the buyer.
    Delivered {
        /// The job.
        job: String,
        /// Whether it went in the answer to the job request (a job that ended at once),
        /// rather than in a message of its own once the job ended.
        in_reply: bool,
    },
    /// Provider: a job was paid by a voucher.
    Paid {
        /// The job.
        job: String,
        /// The channel.
        channel: String,
        /// The voucher's cumulative amount.
        cumulative: String,
        /// Whether the payment came in the request of the channel's next job, rather than
        /// in a message of its own.
        carried: bool,
    },
    /// Provider: a buyer withheld payment.
    Withheld {
        /// The job.
        job: String,
        /// The buyer's reason.
        reason: String,
    },
    /// Provider: vouchers were claimed on chain.
    Claimed {
        /// Channels claimed.
        channels: usize,
        /// Total paid by the claim, token base units.
        amount: String,
        /// Transaction hash.
        tx: String,
        /// Gas the transaction used.
        gas: u64,
    },
    /// A ticket was claimed on chain (provider), or seen claimed (buyer).
    TicketClaimed {
        /// The job.
        job: String,
        /// The escrow's ticket id.
        ticket: String,
    },
    /// A ticket's dispute started (buyer) or was seen (provider).
    Disputed {
        /// The escrow's ticket id.
        ticket: String,
    },
    /// Buyer: a verifier of a dispute handed over the provider's result of a job whose
    /// result never arrived; its outputs are the ones claimed on chain.
    DeliveredInDispute {
        /// The job.
        job: String,
        /// The escrow's ticket id.
        ticket: String,
    },
    /// Verifier: a verdict was posted on chain.
    Verdict {
        /// The escrow's ticket id.
        ticket: String,
        /// Whether it agrees with the provider's output hash.
        agrees: bool,
    },
    /// A ticket was settled on chain.
    TicketSettled {
        /// The escrow's ticket id.
        ticket: String,
        /// `undisputed`, `provider_right`, `provider_wrong` or `undecided`.
        outcome: String,
    },
    /// Buyer: a job was submitted.
    Submitted {
        /// The job.
        job: String,
    },
    /// Buyer: a job was sent to a provider.
    Sent {
        /// The job.
        job: String,
        /// The provider's EVM address.
        provider: String,
        /// The attempt (1 for the first provider tried).
        attempt: u32,
    },
    /// Buyer: a provider refused or failed; the job goes elsewhere.
    Retrying {
        /// The job.
        job: String,
        /// The provider's EVM address.
        provider: String,
        /// Why.
        reason: String,
    },
    /// Buyer: a result arrived and matches its commitment.
    ResultIn {
        /// The job.
        job: String,
        /// How it ended.
        outcome: String,
        /// Its charge.
        amount: String,
        /// Fuel it used.
        fuel: u64,
    },
    /// Buyer: the job was sampled for a spot check.
    Checking {
        /// The job.
        job: String,
        /// Re-runs asked.
        reruns: u32,
    },
    /// Buyer: the spot check ended.
    Checked {
        /// The job.
        job: String,
        /// Whether the provider's result held.
        passed: bool,
        /// The verifier's decision (`Passed`, `ProviderRight`, `ProviderWrong`,
        /// `Undecided { .. }`).
        decision: String,
        /// Re-runs made (delivered or not).
        reruns: u32,
    },
    /// An escrow event this node saw on chain.
    Escrow {
        /// Its name (`VoucherClaimed`, `TicketSettled`, ...).
        name: String,
        /// Its block.
        block: u64,
        /// When this node saw it, unix seconds.
        seen_at: u64,
        /// Its fields.
        fields: serde_json::Value,
    },
    /// Buyer: a job is finished (verified where checked, paid where accepted).
    Finished {
        /// The job.
        job: String,
        /// `paid`, `withheld` or `failed`.
        state: String,
        /// Milliseconds from submission.
        millis: u64,
    },
    /// Buyer: a payment channel was opened.
    ChannelOpened {
        /// The channel.
        channel: String,
        /// The provider's EVM address.
        provider: String,
        /// The deposit.
        deposit: String,
    },
    /// Something worth an operator's attention that is not an error of the node.
    Warning {
        /// What.
        message: String,
    },
    /// The node stops (Ctrl-C, SIGTERM).
    ShuttingDown,
}

/// Shown on a terminal: text that may have come from a peer (a provider's refusal, a
/// failure's message) is escaped, so a peer cannot drive the operator's terminal.
impl fmt::Display for NodeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Peer { peer } => write!(f, "peer {peer}"),
            Self::Api { address } => write!(f, "api http://{address}"),
            Self::Listening { address } => write!(f, "listening {address}"),
            Self::Ready => f.write_str("ready"),
            Self::Connected { peer, address } => write!(f, "connected {peer} {address}"),
            Self::Disconnected { peer } => write!(f, "disconnected {peer}"),
            Self::HolePunch { peer, ok, detail } => write!(
                f,
                "hole-punch {peer} {} {detail}",
                if *ok { "ok" } else { "failed" }
            ),
            Self::Banned { peer } => write!(f, "banned {peer}"),
            Self::Registered { account, stake } => {
                write!(f, "registered {account} stake {stake}")
            }
            Self::Announced { sequence } => write!(f, "announced offer sequence {sequence}"),
            Self::Withdrew { sequence } => write!(f, "withdrew offer sequence {sequence}"),
            Self::Accepted { job, peer } => write!(f, "accepted job {job} from {peer}"),
            Self::Refused { job, reason } => write!(f, "refused job {job}: {}", printable(reason)),
            Self::Ran {
                job,
                outcome,
                fuel,
                amount,
            } => write!(
                f,
                "ran job {job}: {outcome} with {fuel} fuel, charge {amount}"
            ),
            Self::JobFailed { job, reason } => write!(f, "job {job} failed: {}", printable(reason)),
            Self::Delivered { job, in_reply } => {
                let how = if *in_reply { " with the answer" } else { "" };
                write!(f, "delivered result of job {job}{how}")
            }
            Self::Paid {
                job,
                channel,
                cumulative,
                carried,
            } => {
                let how = if *carried { " (with the next job)" } else { "" };
                write!(
                    f,
                    "paid job {job} channel {channel} cumulative {cumulative}{how}"
                )
            }
            Self::Withheld { job, reason } => {
                write!(f, "withheld job {job}: {}", printable(reason))
            }
            Self::Claimed {
                channels,
                amount,
                tx,
                gas,
            } => write!(
                f,
                "claimed {amount} from {channels} channels in {tx} ({gas} gas)"
            ),
            Self::TicketClaimed { job, ticket } => {
                write!(f, "ticket claimed {ticket} for job {job}")
            }
            Self::Disputed { ticket } => write!(f, "disputed ticket {ticket}"),
            Self::DeliveredInDispute { job, ticket } => {
                write!(
                    f,
                    "result of job {job} delivered by a verifier of ticket {ticket}"
                )
            }
            Self::Verdict { ticket, agrees } => write!(
                f,
                "verdict on ticket {ticket}: {}",
                if *agrees { "agrees" } else { "disagrees" }
            ),
            Self::TicketSettled { ticket, outcome } => {
                write!(f, "ticket settled {ticket}: {outcome}")
            }
            Self::Submitted { job } => write!(f, "submitted job {job}"),
            Self::Sent {
                job,
                provider,
                attempt,
            } => write!(f, "sent job {job} to {provider} (attempt {attempt})"),
            Self::Retrying {
                job,
                provider,
                reason,
            } => write!(f, "retrying job {job}: {provider} {}", printable(reason)),
            Self::ResultIn {
                job,
                outcome,
                amount,
                fuel,
            } => write!(
                f,
                "result of job {job}: {outcome}, {fuel} fuel, charge {amount}"
            ),
            Self::Checking { job, reruns } => {
                write!(f, "checking job {job} with {reruns} re-runs")
            }
            Self::Checked {
                job,
                passed,
                decision,
                reruns,
            } => write!(
                f,
                "check of job {job} {} ({decision}, {reruns} re-runs)",
                if *passed { "passed" } else { "failed" }
            ),
            Self::Escrow { name, block, .. } => write!(f, "escrow {name} in block {block}"),
            Self::Finished { job, state, millis } => {
                write!(f, "finished job {job}: {state} in {millis} ms")
            }
            Self::ChannelOpened {
                channel,
                provider,
                deposit,
            } => write!(f, "opened channel {channel} to {provider} with {deposit}"),
            Self::Warning { message } => write!(f, "warning {}", printable(message)),
            Self::ShuttingDown => f.write_str("shutting down"),
        }
    }
}

/// The node's event stream. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<NodeEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    /// A new stream with no listener.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    /// Tells every listener (none listening is fine).
    pub fn emit(&self, event: NodeEvent) {
        let _ = self.tx.send(event);
    }

    /// A new listener, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_text_is_printed_escaped() {
        let e = NodeEvent::Retrying {
            job: "J".into(),
            provider: "0xP".into(),
            reason: "refused: \x1b]0;pwned\x07\x1b[2J".into(),
        };
        let line = e.to_string();
        assert!(!line.contains('\x1b') && !line.contains('\x07'), "{line:?}");
        assert!(line.contains("\\u{1b}]0;pwned"), "{line}");
    }

    #[test]
    fn lines_start_with_their_word_and_json_names_its_kind() {
        let e = NodeEvent::Connected {
            peer: "P".into(),
            address: "/ip4/1.2.3.4/tcp/1".into(),
        };
        assert_eq!(e.to_string(), "connected P /ip4/1.2.3.4/tcp/1");
        let json = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(json["kind"], "connected");
        assert_eq!(json["peer"], "P");
        assert_eq!(NodeEvent::Ready.to_string(), "ready");
    }

    #[tokio::test]
    async fn a_listener_hears_what_comes_after_it() {
        let events = Events::new();
        events.emit(NodeEvent::Ready);
        let mut rx = events.subscribe();
        events.emit(NodeEvent::ShuttingDown);
        assert_eq!(rx.recv().await.ok(), Some(NodeEvent::ShuttingDown));
    }
}
