//! What happens in a node, as one stream of events: `sietch node run` prints each as a line
//! (first word first, so scripts and tests can follow a node), the HTTP API streams them as
//! server-sent events, and the devnet turns them into its progress display.
//!
//! The stream is a bounded broadcast: a listener that falls behind loses the oldest events
//! (and is told how many), it never slows the node down.

use std::fmt;
use std::net::SocketAddr;

use libp2p::{Multiaddr, PeerId};
use serde::{Serialize, Serializer};
use sietch_market::{Address, B256, Outcome, U256, printable};

/// Ids, addresses, amounts and outcomes are typed in an event and written once, the way
/// they are shown (`0x…` hex for ids, checksummed addresses, decimal token base units), in
/// both the JSON of the API's stream and the lines `sietch node run` prints.
fn display<T: fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// How a bought job ended, for the buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobEnd {
    /// Its result arrived (and held, where checked) and the provider was paid.
    Paid,
    /// A result came but payment was withheld (a failed check, a bad result).
    Withheld,
    /// No provider delivered a result.
    Failed,
}

impl fmt::Display for JobEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Paid => "paid",
            Self::Withheld => "withheld",
            Self::Failed => "failed",
        })
    }
}

/// How the escrow settled a ticket (its `Outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketOutcome {
    /// Nobody disputed it: the provider is paid.
    Undisputed,
    /// Disputed, and the verifiers agreed with the provider.
    ProviderRight,
    /// Disputed, and the verifiers disagreed with the provider: it is slashed.
    ProviderWrong,
    /// Disputed without a majority.
    Undecided,
}

impl TicketOutcome {
    /// The escrow's outcome code (0 undisputed, 1 provider right, 2 provider wrong, any
    /// other undecided).
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Undisputed,
            1 => Self::ProviderRight,
            2 => Self::ProviderWrong,
            _ => Self::Undecided,
        }
    }

    /// Its name, as the API and the node's lines write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Undisputed => "undisputed",
            Self::ProviderRight => "provider_right",
            Self::ProviderWrong => "provider_wrong",
            Self::Undecided => "undecided",
        }
    }
}

impl fmt::Display for TicketOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something that happened in the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node's identity.
    Peer {
        /// libp2p peer id.
        #[serde(serialize_with = "display")]
        peer: PeerId,
    },
    /// The HTTP API listens.
    Api {
        /// `host:port`.
        #[serde(serialize_with = "display")]
        address: SocketAddr,
    },
    /// A listen address is known.
    Listening {
        /// The multiaddress.
        #[serde(serialize_with = "display")]
        address: Multiaddr,
    },
    /// Started and listening.
    Ready,
    /// A connection opened.
    Connected {
        /// The peer.
        #[serde(serialize_with = "display")]
        peer: PeerId,
        /// Its address (`/p2p-circuit` in it: relayed).
        #[serde(serialize_with = "display")]
        address: Multiaddr,
    },
    /// The last connection to a peer closed.
    Disconnected {
        /// The peer.
        #[serde(serialize_with = "display")]
        peer: PeerId,
    },
    /// A hole punch ended.
    HolePunch {
        /// The peer.
        #[serde(serialize_with = "display")]
        peer: PeerId,
        /// Whether a direct connection was made.
        ok: bool,
        /// What happened.
        detail: String,
    },
    /// A peer was cut off for forwarding invalid offers.
    Banned {
        /// The peer.
        #[serde(serialize_with = "display")]
        peer: PeerId,
    },
    /// The node is registered and staked on chain.
    Registered {
        /// EVM address.
        #[serde(serialize_with = "display")]
        account: Address,
        /// Stake, token base units.
        #[serde(serialize_with = "display")]
        stake: U256,
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
        #[serde(serialize_with = "display")]
        job: B256,
        /// The buyer's node.
        #[serde(serialize_with = "display")]
        peer: PeerId,
    },
    /// Provider: a job was refused.
    Refused {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
        /// Why.
        reason: String,
    },
    /// Provider: a job ran.
    Ran {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
        /// How it ended.
        #[serde(serialize_with = "display")]
        outcome: Outcome,
        /// Fuel used.
        fuel: u64,
        /// What it charges, token base units.
        #[serde(serialize_with = "display")]
        amount: U256,
    },
    /// Provider: a job failed before it could run (a missing blob, a bad module).
    JobFailed {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
        /// Why.
        reason: String,
    },
    /// Provider: a blob a job needs (a module, an input, a model) was fetched from the buyer
    /// and stored; a later job naming it runs without fetching it again.
    BlobFetched {
        /// The blob.
        #[serde(serialize_with = "display")]
        hash: B256,
        /// Its size.
        bytes: u64,
        /// How long the transfer took, in milliseconds.
        millis: u64,
    },
    /// Provider: the result reached the buyer.
    Delivered {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
        /// Whether it went in the answer to the job request (a job that ended at once),
        /// rather than in a message of its own once the job ended.
        in_reply: bool,
    },
    /// Provider: a job was paid by a voucher.
    Paid {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
        /// The channel.
        #[serde(serialize_with = "display")]
        channel: B256,
        /// The voucher's cumulative amount.
        #[serde(serialize_with = "display")]
        cumulative: U256,
        /// Whether the payment came in the request of the channel's next job, rather than
        /// in a message of its own.
        carried: bool,
    },
    /// Provider: a buyer withheld payment.
    Withheld {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
        /// The buyer's reason.
        reason: String,
    },
    /// Provider: vouchers were claimed on chain.
    Claimed {
        /// Channels claimed.
        channels: usize,
        /// Total paid by the claim, token base units.
        #[serde(serialize_with = "display")]
        amount: U256,
        /// Transaction hash.
        #[serde(serialize_with = "display")]
        tx: B256,
        /// Gas the transaction used.
        gas: u64,
    },
    /// A ticket was claimed on chain (provider), or seen claimed (buyer).
    TicketClaimed {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
        /// The escrow's ticket id.
        #[serde(serialize_with = "display")]
        ticket: B256,
    },
    /// A ticket's dispute started (buyer) or was seen (provider).
    Disputed {
        /// The escrow's ticket id.
        #[serde(serialize_with = "display")]
        ticket: B256,
    },
    /// Buyer: a verifier of a dispute handed over the provider's result of a job whose
    /// result never arrived; its outputs are the ones claimed on chain.
    DeliveredInDispute {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
        /// The escrow's ticket id.
        #[serde(serialize_with = "display")]
        ticket: B256,
    },
    /// Verifier: a verdict was posted on chain.
    Verdict {
        /// The escrow's ticket id.
        #[serde(serialize_with = "display")]
        ticket: B256,
        /// Whether it agrees with the provider's output hash.
        agrees: bool,
    },
    /// A ticket was settled on chain.
    TicketSettled {
        /// The escrow's ticket id.
        #[serde(serialize_with = "display")]
        ticket: B256,
        /// `undisputed`, `provider_right`, `provider_wrong` or `undecided`.
        outcome: TicketOutcome,
    },
    /// Buyer: a job was submitted.
    Submitted {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
    },
    /// Buyer: a job was sent to a provider.
    Sent {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
        /// The provider's EVM address.
        #[serde(serialize_with = "display")]
        provider: Address,
        /// The attempt (1 for the first provider tried).
        attempt: u32,
    },
    /// Buyer: a provider refused or failed; the job goes elsewhere.
    Retrying {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
        /// The provider's EVM address.
        #[serde(serialize_with = "display")]
        provider: Address,
        /// Why.
        reason: String,
    },
    /// Buyer: a result arrived and matches its commitment.
    ResultIn {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
        /// How it ended.
        #[serde(serialize_with = "display")]
        outcome: Outcome,
        /// Its charge.
        #[serde(serialize_with = "display")]
        amount: U256,
        /// Fuel it used.
        fuel: u64,
    },
    /// Buyer: the job was sampled for a spot check.
    Checking {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
        /// Re-runs asked.
        reruns: u32,
    },
    /// Buyer: the spot check ended.
    Checked {
        /// The job.
        #[serde(serialize_with = "display")]
        job: B256,
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
        #[serde(serialize_with = "display")]
        job: B256,
        /// `paid`, `withheld` or `failed`.
        state: JobEnd,
        /// Milliseconds from submission.
        millis: u64,
    },
    /// Buyer: a payment channel was opened.
    ChannelOpened {
        /// The channel.
        #[serde(serialize_with = "display")]
        channel: B256,
        /// The provider's EVM address.
        #[serde(serialize_with = "display")]
        provider: Address,
        /// The deposit.
        #[serde(serialize_with = "display")]
        deposit: U256,
    },
    /// Something worth an operator's attention that is not an error of the node.
    Warning {
        /// What.
        message: String,
    },
    /// The chain reorganized blocks this node had read (`docs/finality.md`). `deep`: past
    /// `[finality] confirmations`, so events the node had acted on were dropped: an error
    /// for the operator; the node re-synced from the common ancestor.
    Reorg {
        /// The newest block both branches share; `None` when it is deeper than the block
        /// hashes the node keeps.
        ancestor: Option<u64>,
        /// Blocks dropped from the branch the node had read.
        dropped: u64,
        /// Escrow events of the dropped blocks (delivered to the roles or not yet).
        retracted: usize,
        /// Past the confirmation depth: events the roles had acted on were retracted.
        deep: bool,
        /// The block the node reads the chain again from.
        resync_from: u64,
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
            Self::BlobFetched {
                hash,
                bytes,
                millis,
            } => write!(f, "fetched blob {hash} ({bytes} bytes in {millis} ms)"),
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
            Self::Reorg {
                ancestor,
                dropped,
                retracted,
                deep,
                resync_from,
            } => {
                write!(
                    f,
                    "{}chain reorganization: {dropped} block{} dropped above ",
                    if *deep { "DEEP " } else { "" },
                    if *dropped == 1 { "" } else { "s" }
                )?;
                match ancestor {
                    Some(a) => write!(f, "block {a}")?,
                    None => f.write_str("an ancestor older than the hashes kept")?,
                }
                write!(
                    f,
                    ", {retracted} escrow events retracted, reading again from block {resync_from}"
                )
            }
            Self::ShuttingDown => f.write_str("shutting down"),
        }
    }
}

mod stream;

pub use stream::{Events, NumberedEvent, REPLAY, Resumed, Since};

#[cfg(test)]
mod tests;
