//! The Sietch SDK for buyers: talk to a Sietch node's HTTP API to fund channels, build
//! jobs, submit them, follow their progress live, and get their verified results and, for a
//! provider found wrong, the evidence.
//!
//! A node does the market work — matching offers, tickets, spot checks, vouchers, disputes;
//! the SDK is how a program asks it to. It holds no keys: writes carry the node's API token
//! (`<data dir>/api-token`).
//!
//! # The token goes only where it belongs, and only on writes
//!
//! The API token is write access to a node: it funds channels and submits jobs. A [`Client`]
//! sends it only on the calls that change something ([`Client::upload`], [`Client::submit`],
//! [`Client::run`], [`Client::fund`], [`Client::submit_and_follow`]) and never on a read
//! ([`Client::offers`], [`Client::job`], [`Client::events`], ...): a node's reads need no token,
//! so a node that is not yours learns nothing by answering them. It has the token only when
//! given one ([`Client::with_token`]) or when it was made from the node's own data directory
//! ([`Client::from_data_dir`], which takes the address from the same directory's
//! `config.toml`). It follows no redirects, so a write is never re-sent elsewhere.
//! Answers are bounded ([`MAX_RESPONSE_BYTES`], [`MAX_EVENT_BYTES`]).
//!
//! # Example: one job on a local market
//!
//! This runs for real: a local chain, the escrow, two provider nodes and a buyer node (the
//! same market `sietch devnet` runs), then a job through the SDK.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # let market = sietch_testkit::devnet::Devnet::start(
//! #     sietch_testkit::devnet::DevnetConfig::new(2, dir.path())).await?;
//! # let api = format!("http://{}", market.buyer.api);
//! # let token = std::fs::read_to_string(dir.path().join("buyer/api-token"))?;
//! # let module = wat::parse_str(r#"(module (import "wasi_snapshot_preview1" "fd_write"
//! #   (func $w (param i32 i32 i32 i32) (result i32))) (memory (export "memory") 1)
//! #   (data (i32.const 16) "hello\n") (func (export "_start")
//! #   (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 6))
//! #   (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#)?;
//! use sietch_sdk::{Client, Job};
//!
//! let client = Client::new(&api)?.with_token(token.trim());
//! let job = Job::new(module)
//!     .fuel(10_000_000)
//!     .memory_bytes(1 << 20)
//!     .sampling_ppm(1_000_000) // check every job: it is re-run elsewhere and compared
//!     .price_cap(10u128.pow(17));
//! let done = client.run(&job).await?;
//! assert_eq!(done.outputs.stdout()?, b"hello\n");
//! assert_eq!(done.check.as_deref(), Some("Passed"));
//! println!("paid {} to {}", done.paid, done.provider);
//! # market.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod generate;
pub mod train;
mod types;

use std::path::Path;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use generate::{
    Completion, DEFAULT_GENERATION_FUEL, Generated, Generation, Model, Prompt, parse_completions,
};
use types::InputData;
pub use types::*;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node's address is not an `http://host:port` URL.
    #[error("{0:?} is not a node address like http://127.0.0.1:7077")]
    BadUrl(String),
    /// The node could not be reached.
    #[error("cannot reach the node at {url}: {source}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The node answered with an error; `code` is stable (see the node's OpenAPI document).
    #[error("the node refused ({status} {code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code, e.g. `missing_blob`, `token_required`, `job_failed`.
        code: String,
        /// What to do about it.
        message: String,
    },
    /// No offer in the market can run the job (code `no_match`): `message` is the market's
    /// whole explanation, `blocker` the filter that stopped the last offers (`gpu`, `cores`,
    /// `memory`, `inputs`, `features`, `price`, `stake`, `avoid` when only the providers the
    /// job avoids fit ([`Job::avoid`]), or `live` for an empty book) and
    /// `funnel` how many offers passed each filter, in the order they apply.
    #[error("{message}")]
    NoMatch {
        /// The market's explanation, for people.
        message: String,
        /// The filter no offer passed.
        blocker: String,
        /// `(filter, offers that passed it)`, in the order the filters apply.
        funnel: Vec<(String, u64)>,
    },
    /// The node's answer was not what this SDK understands (another version?).
    #[error("unexpected answer from the node: {0}")]
    Decode(String),
    /// A local file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A job did not finish in time.
    #[error("job {0} did not finish in time")]
    Timeout(String),
    /// A job id that is not `0x` and hex digits.
    #[error("{0:?} is not a job id (0x and hex digits)")]
    BadId(String),
    /// The node's answer (or one event of its stream) is larger than this SDK reads.
    #[error("the node's answer is over the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// The largest answer the SDK reads from a node, in bytes (a job's outputs are at most the
/// protocol's 16 MiB result, base64 in JSON; a list of jobs carries no more than that each).
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// The largest single event the SDK reads from a node's event stream, in bytes.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// How long the SDK waits to connect to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A string field of a JSON object.
pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A live stream of the node's events.
pub type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// A result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A connection to a node's HTTP API.
///
/// Reads go out without a token; writes carry the token when the client has one (see the
/// crate documentation: [`Client::with_token`], [`Client::from_data_dir`]).
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself: a client is logged more often than it is kept secret.
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the node at `url` (e.g. `http://127.0.0.1:7077`), without a token: it
    /// can read; writes need [`Client::with_token`].
    pub fn new(url: &str) -> Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| Error::BadUrl(url.to_owned()))?;
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(Error::BadUrl(url.to_owned()));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|source| Error::Unreachable {
                url: base.clone(),
                source,
            })?;
        Ok(Self {
            base,
            token: None,
            http,
        })
    }

    /// Writes (uploads, jobs, funding) carry `token`, as `Authorization: Bearer`; reads never
    /// do. Give a node its own token only: it is write access to that node.
    #[must_use]
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Whether writes will carry a token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// A client for the node whose data directory is `dir`: its API address from
    /// `config.toml` (`api`, default `127.0.0.1:7077`) and, for writes, its token from
    /// `api-token` (the token and the address come from the same directory).
    pub fn from_data_dir(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(|source| Error::Io {
                path: p.display().to_string(),
                source,
            })
        };
        let token = read("api-token")?;
        let api = read("config.toml")
            .ok()
            .and_then(|c| config_api(&c))
            .unwrap_or_else(|| "127.0.0.1:7077".into());
        Ok(Self::new(&format!("http://{api}"))?.with_token(token.trim()))
    }

    /// The node's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends a request and reads its JSON answer, bounded by [`MAX_RESPONSE_BYTES`].
    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let unreachable = |source| Error::Unreachable {
            url: self.base.clone(),
            source,
        };
        let mut resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(Error::TooLarge {
                limit: MAX_RESPONSE_BYTES,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Error::TooLarge {
                    limit: MAX_RESPONSE_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !(200..300).contains(&status) {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(e) = no_match(&v) {
                return Err(e);
            }
            return Err(Error::Api {
                status,
                code: str_field(&v, "code").unwrap_or("unknown").to_owned(),
                message: str_field(&v, "message").map_or_else(
                    || String::from_utf8_lossy(&body).into_owned(),
                    str::to_owned,
                ),
            });
        }
        serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()))
    }

    /// A read: `GET path`, never with the token.
    async fn read<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// A write: `req` with the token, when the client has one.
    async fn write<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        self.send(req).await
    }

    /// A write of JSON: `POST path` with `body`, with the token.
    async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        self.write(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// The node: identity, peers, gossip counters, chain.
    pub async fn node(&self) -> Result<NodeInfo> {
        self.read("/api/v1/node").await
    }

    /// The live offers the node knows.
    pub async fn offers(&self) -> Result<Vec<Offer>> {
        self.read("/api/v1/offers").await
    }

    /// Providers with their stake and reputation.
    pub async fn providers(&self) -> Result<Vec<Provider>> {
        self.read("/api/v1/providers").await
    }

    /// The node itself as a provider: earnings, jobs, stake and the job values it allows,
    /// channels with what is owed, GPU, blob cache, and a pre-flight check of what stops it
    /// from earning. A node that does not provide answers too (`providing: false`).
    pub async fn provider_status(&self) -> Result<ProviderStatus> {
        self.read("/api/v1/provider").await
    }

    /// The node's payment channels.
    pub async fn channels(&self) -> Result<Vec<Channel>> {
        self.read("/api/v1/channels").await
    }

    /// Puts `amount` token base units into a channel to `provider` (an EVM address): tops
    /// up an open one or opens one. Jobs fund their channels by themselves; this puts the
    /// money in place first.
    pub async fn fund(&self, provider: &str, amount: u128) -> Result<String> {
        let v: Value = self
            .post(
                "/api/v1/channels",
                &json!({"provider": provider, "amount": amount.to_string()}),
            )
            .await?;
        str_field(&v, "channel")
            .map(str::to_owned)
            .ok_or_else(|| Error::Decode(format!("no channel in {v}")))
    }

    /// Uploads a blob (module, stdin, input file); returns its blake3 hash (`0x...`).
    pub async fn upload(&self, bytes: &[u8]) -> Result<String> {
        let v: Value = self
            .write(
                self.http
                    .post(format!("{}/api/v1/blobs", self.base))
                    .body(bytes.to_vec()),
            )
            .await?;
        str_field(&v, "hash")
            .map(str::to_owned)
            .ok_or_else(|| Error::Decode(format!("no hash in {v}")))
    }

    /// Whether the node holds blob `hash` (`0x` and the blake3 hash): a model is uploaded only
    /// when it does not.
    pub async fn has_blob(&self, hash: &str) -> Result<bool> {
        match self
            .read::<Value>(&format!("/api/v1/blobs/{}", check_id(hash)?))
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads the job's module and inputs and submits it; returns its id at once.
    pub async fn submit(&self, job: &Job) -> Result<String> {
        let body = self.prepare(job).await?;
        let v: Value = self.post("/api/v1/jobs", &body).await?;
        str_field(&v, "job_id")
            .map(str::to_owned)
            .ok_or_else(|| Error::Decode(format!("no job id in {v}")))
    }

    /// Uploads, submits and waits: returns when the result is verified (where the job was
    /// sampled) and paid — or not paid, when its provider was found wrong.
    pub async fn run(&self, job: &Job) -> Result<Finished> {
        let body = self.prepare(job).await?;
        let started = tokio::time::Instant::now();
        let v: Value = self.post("/api/v1/jobs?wait=true", &body).await?;
        if v.get("finished") != Some(&Value::Bool(false)) {
            return serde_json::from_value(v).map_err(|e| Error::Decode(e.to_string()));
        }
        // The node stopped waiting (`http.wait_secs`) and the job goes on: follow it until
        // it ends, within the job's own deadline.
        let id = v
            .get("job_id")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Decode("a still-running answer without a job id".into()))?
            .to_owned();
        let j = self
            .wait(&id, Duration::from_secs(job.deadline_secs_left()))
            .await?;
        let outputs = match (j.state.as_str(), j.outputs) {
            ("paid" | "done", Some(outputs)) => outputs,
            (state, _) => {
                return Err(Error::Api {
                    status: 502,
                    code: "job_failed".into(),
                    message: format!("job {id} ended {state}: {}", j.note),
                });
            }
        };
        Ok(Finished {
            job_id: id,
            provider: j.counterparty,
            paid: j.amount.unwrap_or_else(|| "0".into()),
            check: None,
            millis: started.elapsed().as_millis() as u64,
            outputs,
        })
    }

    async fn prepare(&self, job: &Job) -> Result<Value> {
        let module = self.upload(&job.module).await?;
        let stdin = match &job.stdin {
            Some(b) => Some(self.upload(b).await?),
            None => None,
        };
        let mut inputs = Vec::new();
        for (name, data) in &job.inputs {
            let blob = match data {
                InputData::Bytes(bytes) => self.upload(bytes).await?,
                InputData::Blob(hash) => check_id(hash)?.to_owned(),
            };
            inputs.push(json!({"name": name, "blob": blob}));
        }
        Ok(job.submission(&module, stdin.as_deref(), inputs))
    }

    /// A job as the node stored it (buyer side), with its outputs once finished.
    pub async fn job(&self, id: &str) -> Result<JobRecord> {
        self.read(&format!("/api/v1/jobs/{}?side=buyer", check_id(id)?))
            .await
    }

    /// The jobs this node bought.
    pub async fn jobs(&self) -> Result<Vec<JobRecord>> {
        self.read("/api/v1/jobs?side=buyer").await
    }

    /// Waits until job `id` is paid, withheld or failed, polling every 200 ms, for up to
    /// `timeout`.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<JobRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let j = self.job(id).await?;
            if j.is_final() {
                return Ok(j);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(id.to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The evidence against the provider of job `id`, if it was found wrong (and this node
    /// withheld its payment).
    pub async fn evidence(&self, id: &str) -> Result<Option<Dispute>> {
        let all: Vec<Dispute> = self.read("/api/v1/disputes").await?;
        Ok(all.into_iter().find(|d| d.job.as_deref() == Some(id)))
    }

    /// Every event of the node, live (server-sent events). The stream ends when the node
    /// closes it.
    pub async fn events(&self) -> Result<EventStream> {
        let resp = self
            .http
            .get(format!("{}/api/v1/events", self.base))
            .send()
            .await
            .map_err(|source| Error::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let bytes = resp.bytes_stream();
        Ok(Box::pin(sse(Box::pin(bytes))))
    }

    /// The events of one job, live, until it finishes. A job that already finished gives
    /// one `finished` event.
    pub async fn progress(&self, id: &str) -> Result<EventStream> {
        // Listen first, then look: an event between the two is not lost.
        let events = self.events().await?;
        let record = self.job(id).await?;
        if record.is_final() {
            let e = Event::from_value(json!({
                "kind": "finished", "job": id, "state": record.state,
            }));
            return Ok(Box::pin(futures::stream::iter([Ok(e)])));
        }
        Ok(for_job(events, id.to_owned()))
    }

    /// Submits `job` and follows it: its id and its events until it finishes (none missed,
    /// since the stream is open before the job is submitted).
    pub async fn submit_and_follow(&self, job: &Job) -> Result<(String, EventStream)> {
        let events = self.events().await?;
        let id = self.submit(job).await?;
        let stream = for_job(events, id.clone());
        Ok((id, stream))
    }
}

/// The events of job `id` in `events`, up to and including its `finished` (the stream
/// ends right after it, without waiting for another event).
fn for_job(events: EventStream, id: String) -> EventStream {
    Box::pin(futures::stream::unfold(
        Some((events, id)),
        |state| async move {
            let (mut events, id) = state?;
            loop {
                let e = events.next().await?;
                match &e {
                    Ok(ev) if ev.job() != Some(id.as_str()) => continue,
                    Ok(ev) if ev.kind == "finished" => return Some((e, None)),
                    _ => return Some((e, Some((events, id)))),
                }
            }
        },
    ))
}

/// Parses a server-sent event stream into events (the `data:` lines of each message). A
/// message over [`MAX_EVENT_BYTES`] ends the stream with [`Error::TooLarge`].
fn sse(
    bytes: impl Stream<Item = std::result::Result<bytes::Bytes, reqwest::Error>> + Unpin + Send,
) -> impl Stream<Item = Result<Event>> + Send {
    futures::stream::unfold(Some((bytes, String::new())), |state| async move {
        let (mut bytes, mut buf) = state?;
        loop {
            if let Some(end) = buf.find("\n\n") {
                let message: String = buf.drain(..end + 2).collect();
                let data: String = message
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect::<Vec<_>>()
                    .join("\n");
                if data.is_empty() {
                    continue;
                }
                let e = serde_json::from_str::<Value>(&data)
                    .map_err(|e| Error::Decode(e.to_string()))
                    .map(Event::from_value);
                return Some((e, Some((bytes, buf))));
            }
            if buf.len() > MAX_EVENT_BYTES {
                let e = Error::TooLarge {
                    limit: MAX_EVENT_BYTES,
                };
                return Some((Err(e), None));
            }
            match bytes.next().await {
                Some(Ok(chunk)) => buf.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(e)) => {
                    return Some((Err(Error::Decode(e.to_string())), Some((bytes, buf))));
                }
                None => return None,
            }
        }
    })
}

/// The `api` setting of a node's `config.toml` (`api = "127.0.0.1:7077"`), if it has one.
fn config_api(config: &str) -> Option<String> {
    config.lines().map(str::trim).find_map(|l| {
        let (key, value) = l.split_once('=')?;
        if key.trim() != "api" {
            return None;
        }
        // A comment after the value is not part of it.
        let value = value.split('#').next().unwrap_or_default().trim();
        Some(value.trim_matches('"').to_owned())
    })
}

/// A job id is `0x` and hex digits: it goes into a URL path, where nothing else may.
fn check_id(id: &str) -> Result<&str> {
    let hex = id.strip_prefix("0x").unwrap_or(id);
    if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadId(id.to_owned()));
    }
    Ok(id)
}

/// The typed form of a `no_match` answer, when `v` is one.
fn no_match(v: &Value) -> Option<Error> {
    if str_field(v, "code")? != "no_match" {
        return None;
    }
    let detail = v.get("detail");
    let funnel = detail
        .and_then(|d| d.get("funnel"))
        .and_then(Value::as_array)
        .map(|stages| {
            stages
                .iter()
                .filter_map(|s| {
                    let passed = s.get("passed").and_then(Value::as_u64).unwrap_or(0);
                    Some((str_field(s, "filter")?.to_owned(), passed))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Error::NoMatch {
        message: str_field(v, "message").unwrap_or_default().to_owned(),
        blocker: detail
            .and_then(|d| str_field(d, "blocker"))
            .unwrap_or("unknown")
            .to_owned(),
        funnel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's `no_match` answer (as node/tests/api.rs sees the node write it) becomes
    /// [`Error::NoMatch`] with the explanation whole and the funnel in order.
    #[test]
    fn a_no_match_answer_is_typed() {
        let answer = serde_json::json!({
            "code": "no_match",
            "message": "job 0x01: no offer matches: 2 live offers; none has a GPU",
            "detail": {"blocker": "gpu", "funnel": [
                {"filter": "live", "passed": 2}, {"filter": "gpu", "passed": 0}]},
        });
        match no_match(&answer) {
            Some(Error::NoMatch {
                message,
                blocker,
                funnel,
            }) => {
                assert!(message.ends_with("none has a GPU"), "{message}");
                assert_eq!(blocker, "gpu");
                assert_eq!(funnel, [("live".to_owned(), 2), ("gpu".to_owned(), 0)]);
            }
            other => panic!("{other:?}"),
        }
        let other = serde_json::json!({"code": "job_failed", "message": "m"});
        assert!(no_match(&other).is_none());
    }

    #[test]
    fn the_api_address_is_read_from_a_config() {
        assert_eq!(
            config_api("# api = \"1.2.3.4:1\"\napi = \"127.0.0.1:9\" # here\n").as_deref(),
            Some("127.0.0.1:9")
        );
        assert_eq!(config_api("api_x = 1\n"), None);
        assert_eq!(config_api(""), None);
    }

    #[test]
    fn ids_and_urls_cannot_carry_a_path() {
        assert!(check_id("0xabc123").is_ok());
        for bad in ["", "0x", "../x", "0xab?x=1", "ab/cd", &"a".repeat(65)] {
            assert!(matches!(check_id(bad), Err(Error::BadId(_))), "{bad:?}");
        }
        for bad in [
            "http://a/b",
            "http://u@evil:1",
            "http://a?x",
            "https://a",
            "http://",
        ] {
            assert!(matches!(Client::new(bad), Err(Error::BadUrl(_))), "{bad:?}");
        }
        let c = Client::new("http://127.0.0.1:1/")
            .unwrap()
            .with_token("secret");
        assert_eq!(c.url(), "http://127.0.0.1:1");
        assert!(c.has_token());
        assert!(!format!("{c:?}").contains("secret"));
    }
}
