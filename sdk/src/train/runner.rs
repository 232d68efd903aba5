//! What runs a shard job: the [`ShardRunner`] trait, and [`MarketRunner`], which buys each
//! job on the market through a node's HTTP API. A runner that runs the guest in a local
//! sandbox (the CLI's `--local`, the whole-system test's one-machine reference) implements
//! the same trait outside this crate.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::config::JobLimits;
use super::{Result, SHARD_INPUT, STATS_OUTPUT, UPDATE_OUTPUT, WEIGHTS_INPUT};
use crate::{Client, Job, Outputs};

/// An input of a shard job: its bytes and their blob hash (`0x` and blake3).
#[derive(Debug, Clone)]
pub struct Blob {
    /// `0x` and the blake3 hash of the bytes.
    pub hash: String,
    /// The bytes.
    pub bytes: Arc<[u8]>,
}

impl Blob {
    /// `bytes` with their hash.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            hash: format!("0x{}", blake3::hash(&bytes).to_hex()),
            bytes: bytes.into(),
        }
    }
}

/// One job of a round: the guest trains on one shard from the round's weights.
#[derive(Debug, Clone)]
pub struct ShardJob {
    /// The round, from 0.
    pub round: u32,
    /// The shard, from 0.
    pub shard: u32,
    /// This shard's attempt in the round, from 1.
    pub attempt: u32,
    /// The round's weights (`/input/weights.swt`).
    pub weights: Blob,
    /// The shard (`/input/shard.sdg`).
    pub data: Blob,
    /// The guest's arguments (`mode=train`, `steps=`, `seed=`, ...).
    pub args: Vec<String>,
    /// The job's limits, spot-check policy and price cap.
    pub limits: JobLimits,
    /// Providers (EVM addresses) this attempt must not go to: those of the shard's earlier
    /// attempts in the round that failed, were dropped or straggle. A runner that cannot
    /// honour it (only these providers are there) runs the job anywhere.
    pub avoid: Vec<String>,
    /// Where the job went, for the runner to note as soon as it knows: the round reads it
    /// when the job straggles or fails, to avoid those providers.
    pub placed: Placement,
}

/// The providers an attempt's job was sent to, noted by the runner while the job runs
/// (the market's runner reads the node's `sent_to`) and read by the round: a straggler's or
/// a failed job's providers are avoided when its shard is submitted again. Clones share
/// one list; at most [`crate::MAX_AVOID`], each once.
#[derive(Debug, Clone, Default)]
pub struct Placement(Arc<Mutex<Vec<String>>>);

impl Placement {
    /// Notes that the job was sent to `provider` (an EVM address).
    pub fn note(&self, provider: &str) {
        let mut list = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if list.len() < crate::MAX_AVOID && !list.iter().any(|p| p == provider) {
            list.push(provider.to_owned());
        }
    }

    /// The providers noted, in order.
    pub fn providers(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Whether `provider` names one: not empty, not the zero address a job shows before it is
/// matched.
pub(super) fn is_provider(provider: &str) -> bool {
    let hex = provider.strip_prefix("0x").unwrap_or(provider);
    !hex.is_empty() && hex.bytes().any(|b| b != b'0')
}

/// The guest's `stats.json`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
pub struct ShardStats {
    /// Training loss of the first step.
    pub loss_first: f32,
    /// Training loss of the last step.
    pub loss_last: f32,
    /// Mean training loss over the steps.
    pub loss_mean: f32,
    /// Steps run.
    pub steps: u64,
    /// Samples seen (steps × batch).
    pub samples: u64,
    /// Parameters of the model.
    pub params: u64,
}

/// How one attempt at a shard job ended.
#[derive(Debug, Clone)]
pub enum AttemptEnd {
    /// The job delivered its outputs.
    Delivered {
        /// `/output/update.swt`, if written.
        update: Option<Vec<u8>>,
        /// `/output/stats.json`, if written.
        stats: Option<Vec<u8>>,
        /// The spot check's decision when it was sampled (`Passed`, `ProviderRight`,
        /// `Undecided { .. }`), `None` when it was not.
        check: Option<String>,
    },
    /// The spot check found the provider wrong: its result is not used (and not paid).
    FoundWrong {
        /// The check's decision, as the node words it.
        decision: String,
    },
    /// No provider delivered: refused, failed, timed out, or the node refused the job.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One attempt at a shard job, as a runner reports it.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The job's id, once submitted.
    pub job_id: Option<String>,
    /// The provider whose result it is.
    pub provider: Option<String>,
    /// Paid for it, token base units.
    pub paid: u128,
    /// Fuel it used.
    pub fuel: u64,
    /// How it ended.
    pub end: AttemptEnd,
}

impl Attempt {
    /// An attempt that ended before a job existed.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            job_id: None,
            provider: None,
            paid: 0,
            fuel: 0,
            end: AttemptEnd::Failed {
                reason: reason.into(),
            },
        }
    }
}

/// Runs shard jobs. The driver runs several at once and may abandon one that takes too
/// long (dropping its future): a runner keeps no state that an abandoned run would break.
pub trait ShardRunner: Sync {
    /// Makes `blob` available to the jobs that name it (a market runner uploads it once).
    fn publish(&self, blob: &Blob) -> impl Future<Output = Result<()>> + Send;
    /// Runs `job` to its end.
    fn run(&self, job: &ShardJob) -> impl Future<Output = Attempt> + Send;
}

/// Buys each shard job on the market through a node: the training guest as the module,
/// the weights and the shard as blobs the node holds, polled until the job is paid (its
/// spot check passed or it was not sampled) or failed.
#[derive(Debug, Clone)]
pub struct MarketRunner {
    client: Client,
    module: Vec<u8>,
    poll: Duration,
}

impl MarketRunner {
    /// Jobs of `module` (the training guest) through `client`, which must carry the node's
    /// token.
    pub fn new(client: Client, module: Vec<u8>) -> Self {
        Self {
            client,
            module,
            poll: Duration::from_millis(250),
        }
    }

    /// The node it buys through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn job(&self, job: &ShardJob) -> Job {
        let l = &job.limits;
        let mut j = Job::new(self.module.clone())
            .input_blob(WEIGHTS_INPUT, job.weights.hash.clone())
            .input_blob(SHARD_INPUT, job.data.hash.clone())
            .fuel(l.fuel)
            .memory_bytes(l.memory_bytes)
            .wall_time_ms(l.wall_time_ms)
            .output_bytes(1 << 20)
            .sampling_ppm(l.sampling_ppm)
            .reruns(l.reruns)
            .price_cap(l.price_cap())
            .deadline_secs(l.deadline_secs)
            .avoid(job.avoid.iter().cloned());
        for a in &job.args {
            j = j.arg(a.clone());
        }
        j
    }

    /// Submits `job`; when only the providers it avoids could run it (`no_match`, blocker
    /// `avoid`), submits it again without that list: a small market's provider may be
    /// asked again rather than the shard fail.
    async fn submit(&self, job: &ShardJob) -> crate::Result<String> {
        match self.client.submit(&self.job(job)).await {
            Err(crate::Error::NoMatch { blocker, .. })
                if blocker == "avoid" && !job.avoid.is_empty() =>
            {
                let anywhere = ShardJob {
                    avoid: Vec::new(),
                    ..job.clone()
                };
                self.client.submit(&self.job(&anywhere)).await
            }
            other => other,
        }
    }
}

/// The parts of `GET /api/v1/jobs/{id}?side=buyer` the runner reads.
#[derive(Debug, Deserialize)]
struct JobView {
    state: String,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    note: String,
    #[serde(default)]
    check: Option<Value>,
    #[serde(default)]
    outputs: Option<Outputs>,
    /// The providers the node sent the job to, in order.
    #[serde(default)]
    sent_to: Vec<String>,
}

impl JobView {
    /// Whether the node noted the job as sampled but not yet its check's decision (the
    /// note follows the node's events by a moment).
    fn decision_pending(&self) -> bool {
        let sampled = self
            .check
            .as_ref()
            .and_then(|c| c.get("sampled"))
            .and_then(Value::as_bool)
            == Some(true);
        sampled && self.decision().is_none()
    }

    fn decision(&self) -> Option<String> {
        self.check
            .as_ref()
            .and_then(|c| c.get("decision"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// How the job ended, if it has.
    fn end(&self) -> Option<AttemptEnd> {
        match (self.state.as_str(), &self.outputs) {
            // Paid: its check passed or it was not sampled; checked: passed, payment pending.
            ("paid" | "checked", Some(o)) => Some(AttemptEnd::Delivered {
                update: o.file(UPDATE_OUTPUT).ok().flatten(),
                stats: o.file(STATS_OUTPUT).ok().flatten(),
                check: self.decision(),
            }),
            ("failed", _)
                if self.note.contains("spot check failed")
                    || self.decision().as_deref() == Some("ProviderWrong") =>
            {
                Some(AttemptEnd::FoundWrong {
                    decision: self.decision().unwrap_or_else(|| "ProviderWrong".into()),
                })
            }
            ("failed" | "refused", _) => Some(AttemptEnd::Failed {
                reason: format!("{}: {}", self.state, self.note),
            }),
            _ => None,
        }
    }
}

impl ShardRunner for MarketRunner {
    async fn publish(&self, blob: &Blob) -> Result<()> {
        if !self.client.has_blob(&blob.hash).await? {
            self.client.upload(&blob.bytes).await?;
        }
        Ok(())
    }

    async fn run(&self, job: &ShardJob) -> Attempt {
        let id = match self.submit(job).await {
            Ok(id) => id,
            Err(e) => return Attempt::failed(format!("submitting: {e}")),
        };
        // The node gives up on the job at its deadline; a little past it, so does the runner.
        let give_up = tokio::time::Instant::now()
            + Duration::from_secs(job.limits.deadline_secs.saturating_add(30));
        let mut last_error = String::new();
        // Polls a finished job may wait for its check's decision to be noted.
        let mut patience = 8u32;
        loop {
            match self
                .client
                .read::<JobView>(&format!("/api/v1/jobs/{id}?side=buyer"))
                .await
            {
                Ok(view) => {
                    for p in view.sent_to.iter().filter(|p| is_provider(p)) {
                        job.placed.note(p);
                    }
                    let noting = view.decision_pending() && patience > 0;
                    patience = patience.saturating_sub(u32::from(noting));
                    if let Some(end) = view.end().filter(|_| !noting) {
                        let delivered = matches!(end, AttemptEnd::Delivered { .. });
                        return Attempt {
                            job_id: Some(id),
                            provider: view.provider.clone(),
                            paid: match (view.state.as_str(), &view.amount) {
                                ("paid", Some(a)) => a.parse().unwrap_or(0),
                                _ => 0,
                            },
                            fuel: if delivered {
                                view.outputs.as_ref().map_or(0, |o| o.fuel_used)
                            } else {
                                0
                            },
                            end,
                        };
                    }
                }
                Err(e) => e.to_string().clone_into(&mut last_error),
            }
            if tokio::time::Instant::now() >= give_up {
                return Attempt {
                    job_id: Some(id),
                    provider: None,
                    paid: 0,
                    fuel: 0,
                    end: AttemptEnd::Failed {
                        reason: format!("no end by its deadline {last_error}")
                            .trim_end()
                            .to_owned(),
                    },
                };
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(v: Value) -> JobView {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_job_ends_as_its_record_says() {
        let outputs = serde_json::json!({"outcome": "exited 0", "exit_code": 0, "stdout": "",
            "files": {"update.swt": "U1dUMQ==", "stats.json": "e30="}, "output_hash": "0x",
            "fuel_used": 5, "amount": "7"});
        let paid = view(
            serde_json::json!({"state": "paid", "provider": "0xp", "amount": "7",
            "note": "", "check": {"decision": "Passed"}, "outputs": outputs}),
        );
        match paid.end() {
            Some(AttemptEnd::Delivered {
                update,
                stats,
                check,
            }) => {
                assert_eq!(update.as_deref(), Some(&b"SWT1"[..]));
                assert_eq!(stats.as_deref(), Some(&b"{}"[..]));
                assert_eq!(check.as_deref(), Some("Passed"));
            }
            other => panic!("{other:?}"),
        }
        // Outputs kept before the check ends are not an end: the state decides.
        let done = view(serde_json::json!({"state": "done", "outputs": outputs}));
        assert!(done.end().is_none());
        let wrong = view(
            serde_json::json!({"state": "failed", "note": "spot check failed",
            "outputs": outputs}),
        );
        assert!(matches!(wrong.end(), Some(AttemptEnd::FoundWrong { .. })));
        let failed = view(serde_json::json!({"state": "failed", "note": "no provider"}));
        assert!(
            matches!(failed.end(), Some(AttemptEnd::Failed { reason }) if reason.contains("no provider"))
        );
        assert!(
            view(serde_json::json!({"state": "running"}))
                .end()
                .is_none()
        );
    }

    #[test]
    fn a_placement_is_shared_and_the_zero_address_names_no_provider() {
        let p = Placement::default();
        let q = p.clone();
        assert!(q.providers().is_empty());
        p.note("0xab");
        p.note("0xcd");
        p.note("0xab");
        assert_eq!(q.providers(), ["0xab", "0xcd"]);
        let sent = view(serde_json::json!({"state": "running", "sent_to": ["0xab"]}));
        assert_eq!(sent.sent_to, ["0xab"]);
        assert!(is_provider("0x00000000000000000000000000000000000000a1"));
        assert!(!is_provider("0x0000000000000000000000000000000000000000"));
        assert!(!is_provider(""));
        assert!(!is_provider("0x"));
    }
}
