//! What strangers may make this node hold in memory before it has looked at their messages.
//!
//! Every inbound message of the request-response protocols is read by the guarded codec
//! (`guarded.rs`), which asks this module first:
//!
//! - a **stream slot**: at most `max_inbound_streams_per_peer` messages of one peer are
//!   being read or waiting for this node's answer at once, over all its connections and
//!   protocols;
//! - the **announced length**, taken from the peer's byte budget
//!   (`inbound_budget_per_peer`) and from the node's (`inbound_budget_total`) after the
//!   4-byte length prefix is read and before a byte of the body is. The bytes stay held
//!   until the message is answered (or dropped), so a message waiting in the node's queues
//!   is counted too;
//! - for a **result** (`/sietch/result/1`), an expectation: results are read only from the
//!   peer a job request was sent to, and only up to that job's output limit plus framing.
//!   The network records the expectation itself when a job request goes out through it
//!   (`Guard::expect`); the job id, the first 32 bytes of the body, is all that is read
//!   of a result before the check.
//!
//! A refusal resets the stream and is counted against the peer's score by the actor, to
//! which the guard reports it (`Guard::new`'s receiver): libp2p reports a failed read of
//! a request to no one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use sietch_market::B256;
use tokio::sync::mpsc;

use super::score::Offence;
use super::wire::{MAX_OUTPUT_FILES, MAX_RESULT};

/// What a result may carry besides its outputs: the header, the length prefixes, up to
/// [`MAX_OUTPUT_FILES`] names of up to 1,024 bytes (the wire's text bound), the commitment
/// and the signature.
pub const RESULT_FRAMING: u64 = 1024 + MAX_OUTPUT_FILES as u64 * (8 + 1024);

/// Why an inbound message was refused before its body was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// The peer has as many messages in flight as it may.
    #[error("{peer} has {streams} inbound messages in flight, the most one peer may")]
    Streams {
        /// The peer.
        peer: PeerId,
        /// Its messages in flight.
        streams: u32,
    },
    /// The message would take the peer over its byte budget.
    #[error("{len} more bytes would take {peer} over its {budget}-byte inbound budget")]
    PeerBudget {
        /// The peer.
        peer: PeerId,
        /// The announced length.
        len: u64,
        /// The per-peer budget.
        budget: u64,
    },
    /// The message would take the node over its byte budget.
    #[error("{len} more bytes would take the node over its {budget}-byte inbound budget")]
    TotalBudget {
        /// The announced length.
        len: u64,
        /// The node's budget.
        budget: u64,
    },
    /// A result for a job this node did not send to that peer (or that has expired).
    #[error("result for job {job} from {peer}, which this node did not ask")]
    Unsolicited {
        /// The peer.
        peer: PeerId,
        /// The job id the result names.
        job: B256,
    },
    /// A result longer than its job may produce.
    #[error("result of {len} bytes for job {job}, over that job's {max}-byte bound")]
    OverJobBound {
        /// The job.
        job: B256,
        /// The announced length.
        len: u64,
        /// The job's output limit plus framing.
        max: u64,
    },
    /// The stream's peer is unknown (never happens on a connection the node accepted).
    #[error("a stream of an unknown peer")]
    NoPeer,
}

impl Denied {
    /// What the refusal costs the peer: a result nobody asked of it (or longer than its
    /// job) half a strike, going over its own budget or stream count a quarter, and a full
    /// node budget nothing (others may have filled it).
    pub(crate) fn offence(&self) -> Option<Offence> {
        match self {
            Self::Unsolicited { .. } | Self::OverJobBound { .. } => {
                Some(Offence::UnsolicitedResult)
            }
            Self::Streams { .. } | Self::PeerBudget { .. } => Some(Offence::OverBudget),
            Self::TotalBudget { .. } | Self::NoPeer => None,
        }
    }
}

/// The limits of a [`Guard`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) per_peer: u64,
    pub(crate) total: u64,
    pub(crate) streams_per_peer: u32,
    pub(crate) max_expected: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Use {
    bytes: u64,
    streams: u32,
}

#[derive(Debug, Default)]
struct State {
    used: u64,
    peak: u64,
    /// Only peers with something held: bounded by the streams in flight.
    peers: HashMap<PeerId, Use>,
}

#[derive(Debug, Clone, Copy)]
struct Expected {
    max: u64,
    until: Instant,
}

/// Counters of the guard, for [`super::NetStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GuardStats {
    pub(crate) held: u64,
    pub(crate) peak: u64,
    pub(crate) refused: u64,
}

/// The inbound budgets and the expected results, shared by the codecs of every connection,
/// the actor and the [`super::Network`] handles.
#[derive(Debug)]
pub(crate) struct Guard {
    limits: Limits,
    state: Mutex<State>,
    expected: Mutex<HashMap<(B256, PeerId), Expected>>,
    refused: AtomicU64,
    /// The peer of the connection whose handler is being built (see `guarded.rs`).
    next_peer: Mutex<Option<PeerId>>,
    /// Refusals for the actor to count against their peers; when full, more are not
    /// reported (a peer filling it is cut off by those already queued).
    denials: mpsc::Sender<(PeerId, Denied)>,
}

/// Refusals queued for the actor, at most.
const DENIALS_QUEUE: usize = 1024;

/// A stream slot and the bytes it holds; both are given back when it is dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    guard: Arc<Guard>,
    peer: PeerId,
    bytes: u64,
}

impl Guard {
    /// A guard, and the refusals it reports.
    pub(crate) fn new(limits: Limits) -> (Arc<Self>, mpsc::Receiver<(PeerId, Denied)>) {
        let (denials, rx) = mpsc::channel(DENIALS_QUEUE);
        let guard = Arc::new(Self {
            limits,
            state: Mutex::new(State::default()),
            expected: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            next_peer: Mutex::new(None),
            denials,
        });
        (guard, rx)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a handful of counters, consistent after every statement.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deny(&self, peer: PeerId, d: Denied) -> Denied {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let _ = self.denials.try_send((peer, d.clone()));
        d
    }

    /// Takes a stream slot of `peer` (no bytes yet).
    pub(crate) fn open(self: &Arc<Self>, peer: PeerId) -> Result<Lease, Denied> {
        let mut s = self.state();
        let u = s.peers.entry(peer).or_default();
        if u.streams >= self.limits.streams_per_peer {
            let streams = u.streams;
            if u.streams == 0 && u.bytes == 0 {
                s.peers.remove(&peer);
            }
            drop(s);
            return Err(self.deny(peer, Denied::Streams { peer, streams }));
        }
        u.streams += 1;
        Ok(Lease {
            guard: self.clone(),
            peer,
            bytes: 0,
        })
    }

    /// Takes a stream slot of `peer` and `bytes` of its and the node's budgets at once, for
    /// buffers this node holds for the peer (a blob stream, either way). A refusal is
    /// returned, not charged: the stream is this node's own or one it may simply refuse.
    pub(crate) fn try_hold(self: &Arc<Self>, peer: PeerId, bytes: u64) -> Result<Lease, Denied> {
        let mut s = self.state();
        let u = s.peers.get(&peer).copied().unwrap_or_default();
        if u.streams >= self.limits.streams_per_peer {
            return Err(Denied::Streams {
                peer,
                streams: u.streams,
            });
        }
        if u.bytes.saturating_add(bytes) > self.limits.per_peer {
            return Err(Denied::PeerBudget {
                peer,
                len: bytes,
                budget: self.limits.per_peer,
            });
        }
        if s.used.saturating_add(bytes) > self.limits.total {
            return Err(Denied::TotalBudget {
                len: bytes,
                budget: self.limits.total,
            });
        }
        s.used += bytes;
        s.peak = s.peak.max(s.used);
        let u = s.peers.entry(peer).or_default();
        u.streams += 1;
        u.bytes += bytes;
        Ok(Lease {
            guard: self.clone(),
            peer,
            bytes,
        })
    }

    /// Records that a job request for `job` went to `peer`: its result is read from that
    /// peer only, up to `output_bytes` plus [`RESULT_FRAMING`], for `ttl`. The table is
    /// bounded: when full, expired entries go first, then the one that expires soonest.
    pub(crate) fn expect(&self, job: B256, peer: PeerId, output_bytes: u64, ttl: Duration) {
        let max = output_bytes
            .saturating_add(RESULT_FRAMING)
            .min(MAX_RESULT as u64);
        let now = Instant::now();
        let until = now.checked_add(ttl).unwrap_or(now);
        let mut e = self.expected.lock().unwrap_or_else(PoisonError::into_inner);
        if e.len() >= self.limits.max_expected && !e.contains_key(&(job, peer)) {
            e.retain(|_, x| x.until > now);
            if e.len() >= self.limits.max_expected {
                let soonest = e.iter().min_by_key(|(_, x)| x.until).map(|(k, _)| *k);
                if let Some(k) = soonest {
                    e.remove(&k);
                }
            }
        }
        e.insert((job, peer), Expected { max, until });
    }

    /// Whether a result for `job` of `len` bytes may be read from `peer`.
    pub(crate) fn admit_result(&self, peer: PeerId, job: B256, len: u64) -> Result<(), Denied> {
        let now = Instant::now();
        let found = {
            let mut e = self.expected.lock().unwrap_or_else(PoisonError::into_inner);
            match e.get(&(job, peer)).copied() {
                Some(x) if x.until <= now => {
                    e.remove(&(job, peer));
                    None
                }
                other => other,
            }
        };
        match found {
            None => Err(self.deny(peer, Denied::Unsolicited { peer, job })),
            Some(x) if len > x.max => Err(self.deny(
                peer,
                Denied::OverJobBound {
                    job,
                    len,
                    max: x.max,
                },
            )),
            Some(_) => Ok(()),
        }
    }

    /// Results expected now (expired ones included until they are next looked at).
    #[cfg(test)]
    pub(crate) fn expected_len(&self) -> usize {
        self.expected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn stats(&self) -> GuardStats {
        let s = self.state();
        GuardStats {
            held: s.used,
            peak: s.peak,
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn set_next_peer(&self, peer: Option<PeerId>) {
        *self
            .next_peer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = peer;
    }

    pub(crate) fn next_peer(&self) -> Option<PeerId> {
        *self
            .next_peer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Lease {
    /// Takes `len` more bytes from the peer's and the node's budgets.
    pub(crate) fn grow(&mut self, len: u64) -> Result<(), Denied> {
        let g = &self.guard;
        let mut s = g.state();
        let peer_bytes = s.peers.get(&self.peer).map_or(0, |u| u.bytes);
        if peer_bytes.saturating_add(len) > g.limits.per_peer {
            drop(s);
            return Err(g.deny(
                self.peer,
                Denied::PeerBudget {
                    peer: self.peer,
                    len,
                    budget: g.limits.per_peer,
                },
            ));
        }
        if s.used.saturating_add(len) > g.limits.total {
            drop(s);
            return Err(g.deny(
                self.peer,
                Denied::TotalBudget {
                    len,
                    budget: g.limits.total,
                },
            ));
        }
        s.used += len;
        s.peak = s.peak.max(s.used);
        if let Some(u) = s.peers.get_mut(&self.peer) {
            u.bytes += len;
        }
        self.bytes += len;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut s = self.guard.state();
        s.used = s.used.saturating_sub(self.bytes);
        let empty = match s.peers.get_mut(&self.peer) {
            Some(u) => {
                u.bytes = u.bytes.saturating_sub(self.bytes);
                u.streams = u.streams.saturating_sub(1);
                u.bytes == 0 && u.streams == 0
            }
            None => false,
        };
        if empty {
            s.peers.remove(&self.peer);
        }
    }
}

#[cfg(test)]
mod tests;
