//! The stream itself: a bounded broadcast for the node's own listeners, and a numbered one
//! with the last [`REPLAY`] events kept, for the API's listeners that come back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::NodeEvent;
use crate::sync::lock;

/// Events kept for a listener that falls behind, at most.
const CAPACITY: usize = 4096;

/// Numbered events kept for a listener that comes back (`Last-Event-ID`), at most.
pub const REPLAY: usize = 1024;

/// The node's event stream. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<NodeEvent>,
    numbered: Arc<Mutex<Numbered>>,
}

/// An event with its number in this run of the node.
#[derive(Debug, Clone)]
pub struct NumberedEvent {
    /// 1 for the first event of the run, then one more for each.
    pub seq: u64,
    /// The event.
    pub event: NodeEvent,
}

/// The numbered side of the stream: the last [`REPLAY`] events, and their own broadcast.
#[derive(Debug)]
struct Numbered {
    /// This run of the node, random: a listener's id from another run is not ours.
    run: u32,
    last: u64,
    kept: VecDeque<NumberedEvent>,
    tx: broadcast::Sender<NumberedEvent>,
}

/// Where a listener starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// From now on.
    Now,
    /// After this event of this run (`Resumed::run`, the event's `seq`).
    After {
        /// The run.
        run: u32,
        /// The last event seen.
        seq: u64,
    },
    /// After an event this node cannot place (another run's, or no id it wrote).
    Unknown,
}

/// What a listener coming back after event `after` gets: the kept events since, how many
/// it missed for good, and the live stream from there on (no event twice, none skipped).
#[derive(Debug)]
pub struct Resumed {
    /// This run's id, written in every event id (`<run>-<seq>`).
    pub run: u32,
    /// Kept events after the listener's last one, in order.
    pub replay: Vec<NumberedEvent>,
    /// Events after the listener's last one that are no longer kept (or an unknown number,
    /// `None`, when its id is from another run of the node).
    pub missed: Option<u64>,
    /// Everything from the first event after `replay` on.
    pub live: broadcast::Receiver<NumberedEvent>,
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
            numbered: Arc::new(Mutex::new(Numbered {
                run: rand::random(),
                last: 0,
                kept: VecDeque::with_capacity(REPLAY),
                tx: broadcast::channel(CAPACITY).0,
            })),
        }
    }

    /// Tells every listener (none listening is fine).
    pub fn emit(&self, event: NodeEvent) {
        {
            // Numbered and kept under one lock with the numbered broadcast, so that a
            // listener resuming sees each event once: in its replay or live.
            let mut n = lock(&self.numbered);
            n.last += 1;
            let numbered = NumberedEvent {
                seq: n.last,
                event: event.clone(),
            };
            if n.kept.len() >= REPLAY {
                n.kept.pop_front();
            }
            n.kept.push_back(numbered.clone());
            let _ = n.tx.send(numbered);
        }
        let _ = self.tx.send(event);
    }

    /// A numbered listener from `since`, with the kept events it missed.
    pub fn resume(&self, since: Since) -> Resumed {
        let n = lock(&self.numbered);
        let live = n.tx.subscribe();
        let (replay, missed) = match since {
            Since::Now => (Vec::new(), Some(0)),
            Since::Unknown => (Vec::new(), None),
            Since::After { run, .. } if run != n.run => (Vec::new(), None),
            Since::After { seq, .. } => {
                let oldest = n.kept.front().map_or(n.last + 1, |e| e.seq);
                let replay: Vec<NumberedEvent> =
                    n.kept.iter().filter(|e| e.seq > seq).cloned().collect();
                (replay, Some(oldest.saturating_sub(seq.saturating_add(1))))
            }
        };
        Resumed {
            run: n.run,
            replay,
            missed,
            live,
        }
    }

    /// A new listener, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.tx.subscribe()
    }
}
