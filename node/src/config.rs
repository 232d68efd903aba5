//! The node's configuration, in layers: built-in defaults < the data directory's
//! `config.toml` (or `--config FILE`) < environment variables (`SIETCH_*`) < command-line
//! flags. The file holds only what differs from the defaults; `sietch init` writes a
//! commented one.

mod chain;
mod finality;
mod http;
mod keys;
mod transactions;

pub use chain::ChainConfig;
pub use finality::FinalityConfig;
pub use http::HttpConfig;
pub use keys::{DEFAULT_KEYSTORE, KeysConfig};
pub use transactions::TxConfig;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

use crate::net::version::Version;
use crate::net::{NetConfig, OfferClass};

/// File name of the configuration inside the data directory.
pub const CONFIG_FILE: &str = "config.toml";

/// What can be wrong with a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid {key}: {why}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// Why.
        why: String,
    },
}

/// Settings of `sietch node run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// libp2p addresses to listen on.
    pub listen: Vec<String>,
    /// Peers to connect to at start (each ends in `/p2p/<peer id>`).
    pub bootstrap: Vec<String>,
    /// Discover peers on the local network.
    pub mdns: bool,
    /// Serve as a circuit relay for nodes behind NAT (for nodes with a public address).
    pub relay_server: bool,
    /// Relays to listen through when this node cannot be reached directly.
    pub relays: Vec<String>,
    /// Let AutoNAT use and serve private addresses (tests, private networks).
    pub autonat_private: bool,
    /// Offer classes followed: `cpu`, `gpu-sm7`, `gpu-sm8`, `gpu-sm9plus`.
    pub offer_classes: Vec<String>,
    /// Address of the HTTP API (loopback by default).
    pub api: SocketAddr,
    /// The explorer's built web assets (`explorer/dist` of a checkout), served at `/`; only
    /// from here, never looked for elsewhere (none: `/` says how to build and name it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explorer_dir: Option<PathBuf>,
    /// The HTTP API server: names it answers to, timeouts, caps on connections and event
    /// streams (`[http]`; see `HttpConfig`).
    pub http: HttpConfig,
    /// Sell this machine's compute.
    pub provide: bool,
    /// Provider: price per 10^9 fuel, in token base units.
    #[serde(with = "amount")]
    pub price_per_gfuel: u128,
    /// Provider: price per GPU-second, in token base units.
    #[serde(with = "amount")]
    pub price_per_gpu_second: u128,
    /// Provider: the least a job's ticket must allow, in token base units. A buyer that
    /// withholds the voucher of a job worth less than a ticket claim's gas makes the claim
    /// a loss; set this to about that gas's cost on the chain the node settles on.
    #[serde(with = "amount")]
    pub min_job_price: u128,
    /// Provider: stake stated in the offer, in token base units.
    #[serde(with = "amount")]
    pub stake: u128,
    /// Provider: lifetime of each announced offer, in seconds.
    pub offer_ttl_secs: u64,
    /// Provider: re-announce the offer this often, in seconds (before it expires).
    pub announce_every_secs: u64,
    /// Provider: jobs run at once.
    pub max_concurrent_jobs: u32,
    /// Provider: largest memory a job may ask for, in bytes.
    pub max_job_memory_bytes: u64,
    /// Both roles: the quota on all stored blobs (uploaded modules and inputs, fetched
    /// ones), in bytes; over it, blobs unused for `blob_keep_secs` are evicted, least
    /// recently used first, and a write that still does not fit is refused.
    pub blob_quota_bytes: u64,
    /// Both roles: a blob used (stored, read or served) this recently is never evicted.
    pub blob_keep_secs: u64,
    /// Provider: offer this machine's GPU (CUDA device 0, the one jobs run on) when one is
    /// found; `false` sells CPU time only.
    pub offer_gpu: bool,
    /// EIP-712 domain: chain id of the escrow.
    pub chain_id: u64,
    /// EIP-712 domain: the escrow contract's address (hex), if a chain is configured.
    pub escrow: Option<String>,
    /// JSON-RPC endpoint of the chain the escrow is on (`http://...`); with `escrow`, turns
    /// on channels, claims, disputes and on-chain registration checks of offers.
    pub rpc_url: Option<String>,
    /// Follow the chain from this block (the escrow's deployment block saves work).
    pub chain_from_block: u64,
    /// Where the EVM key lives and how it is unlocked (`[keys]`; see `KeysConfig`).
    pub keys: KeysConfig,
    /// Confirmations before a chain event counts for money (`[finality]`; see
    /// `FinalityConfig`).
    pub finality: FinalityConfig,
    /// Fees, replacement, retries and fallback RPC endpoints (`[transactions]`; see
    /// `TxConfig`).
    pub transactions: TxConfig,
    /// Whose account the node's chain calls serve: a cold `owner` the node's key operates
    /// for (`[chain]`; see `ChainConfig`).
    pub chain: ChainConfig,
    /// Poll the chain for new events this often, in milliseconds.
    pub chain_poll_ms: u64,
    /// Provider: look at vouchers and tickets to claim this often, in seconds.
    pub settle_every_secs: u64,
    /// Provider: claim vouchers at least this often when anything is owed, in seconds.
    pub claim_every_secs: u64,
    /// Provider: claim at once when this much (token base units) is owed in all.
    #[serde(with = "amount")]
    pub claim_threshold: u128,
    /// Provider: claim a job's ticket on chain when no voucher came this long after its
    /// result, in seconds.
    pub voucher_timeout_secs: u64,
    /// Buyer: deposit of a new channel, in token base units (more if a job needs it).
    #[serde(with = "amount")]
    pub channel_deposit: u128,
    /// Buyer: channels to one provider at most (jobs in flight to it at once).
    pub max_lanes: u32,
    /// Buyer: how long to wait for a result beyond the job's wall-time limit before trying
    /// another provider, in seconds.
    pub result_slack_secs: u64,
    /// Buyer: spot-check re-runs may go to providers without a public address, and on the
    /// same network as the provider (one machine, one LAN: the devnet and tests).
    pub verify_local_network: bool,
    /// Tests only: seed of the buyer's randomness (nonces, check secrets, re-run draws).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_seed: Option<u64>,
    /// Tests only: return a wrong result for this many jobs per million (a cheating
    /// provider).
    #[serde(skip_serializing_if = "is_zero")]
    pub test_cheat_ppm: u32,
    /// Tests only: what those wrong results do to `/output` files: in the `SWT1` weights
    /// format (a training update), `zeros`, `negate`, `scale=F` or `noise=A` (a poisoned
    /// update, signed as the result); to a generation's `completions.jsonl`, `completions`
    /// (a word of a completion's text replaced); empty, or no such output: the lie is in
    /// stdout only.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub test_cheat_outputs: String,
    /// Tests only: withhold the voucher of this many honest results per million, and
    /// dispute their tickets (a cheating buyer).
    #[serde(skip_serializing_if = "is_zero")]
    pub test_withhold_ppm: u32,
    /// Tests only: run every job but never send its result to the buyer (1), nor to the
    /// verifiers of a dispute over it (2): a provider that claims tickets for results it
    /// never delivered.
    #[serde(skip_serializing_if = "is_zero")]
    pub test_undeliver: u32,
    /// Tests only: bill this many GPU-milliseconds more than each run used (an
    /// overcharging provider).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub test_overbill_gpu_millis: u64,
    /// Tests only: name the first output file (or an empty new one) this, whatever the job
    /// wrote (a provider choosing names on the buyer's disk).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub test_output_name: String,
    /// Tests only: speak and announce this protocol version (`MAJOR.MINOR.PATCH`) instead of
    /// this build's, in identify and in the offer's extensions (`1.0.0`: a node of the
    /// previous minor version, in a network of mixed versions; docs/protocol/versions.md).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub test_protocol_version: String,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Token amounts: base units up to 2^128, written in TOML as a string of digits (TOML's
/// integers stop at 2^63, under one hundred 18-decimal tokens); read as a string or an
/// integer.
mod amount {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Int(u64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        match Either::deserialize(d)? {
            Either::Int(n) => Ok(u128::from(n)),
            Either::Text(t) => t.replace('_', "").parse().map_err(|_| {
                D::Error::custom(format!("{t:?} is not a whole number of token base units"))
            }),
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen: crate::net::with_quic(vec![
                "/ip4/0.0.0.0/tcp/7070".into(),
                "/ip4/0.0.0.0/udp/7070/quic-v1".into(),
            ]),
            bootstrap: Vec::new(),
            mdns: true,
            relay_server: false,
            relays: Vec::new(),
            autonat_private: false,
            offer_classes: OfferClass::ALL.iter().map(|c| c.name().into()).collect(),
            api: SocketAddr::from(([127, 0, 0, 1], 7077)),
            explorer_dir: None,
            http: HttpConfig::default(),
            provide: false,
            price_per_gfuel: 1_000,
            price_per_gpu_second: 10_000,
            min_job_price: 0,
            stake: 0,
            offer_ttl_secs: 600,
            announce_every_secs: 120,
            max_concurrent_jobs: 2,
            max_job_memory_bytes: 1 << 30,
            blob_quota_bytes: crate::store::DEFAULT_BLOB_QUOTA_BYTES,
            blob_keep_secs: crate::store::DEFAULT_BLOB_KEEP_SECS,
            offer_gpu: true,
            chain_id: 31_337,
            escrow: None,
            rpc_url: None,
            chain_from_block: 0,
            keys: KeysConfig::default(),
            finality: FinalityConfig::default(),
            transactions: TxConfig::default(),
            chain: ChainConfig::default(),
            chain_poll_ms: 1_000,
            settle_every_secs: 10,
            claim_every_secs: 3_600,
            claim_threshold: 1_000_000_000_000_000_000,
            voucher_timeout_secs: 300,
            channel_deposit: 5_000_000_000_000_000_000,
            max_lanes: 4,
            result_slack_secs: 30,
            verify_local_network: false,
            test_seed: None,
            test_cheat_ppm: 0,
            test_cheat_outputs: String::new(),
            test_undeliver: 0,
            test_overbill_gpu_millis: 0,
            test_output_name: String::new(),
            test_withhold_ppm: 0,
            test_protocol_version: String::new(),
        }
    }
}

impl NodeConfig {
    /// Reads a configuration file over the defaults; a missing file is the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// The file `sietch init` writes: every setting, commented out at its default.
    pub fn template() -> String {
        let defaults = toml::to_string_pretty(&Self::default()).unwrap_or_default();
        let mut out = String::from(
            "# Sietch node configuration. Every setting is shown at its default, commented out.\n\
             # Precedence: defaults < this file < SIETCH_* environment variables < flags.\n\n",
        );
        for line in defaults.lines() {
            if line.trim().is_empty() {
                out.push('\n');
            } else {
                out.push_str("# ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The protocol version this node speaks: this build's
    /// ([`crate::net::version::CURRENT`]), or what `test_protocol_version` says.
    pub fn protocol_version(&self) -> Result<Version, ConfigError> {
        if self.test_protocol_version.is_empty() {
            return Ok(crate::net::version::CURRENT);
        }
        Version::parse(&format!("/sietch/{}", self.test_protocol_version)).ok_or_else(|| {
            ConfigError::Invalid {
                key: "test_protocol_version",
                why: format!("{:?} is not MAJOR.MINOR.PATCH", self.test_protocol_version),
            }
        })
    }

    /// Checks every value and builds the network's settings.
    pub fn net_config(&self) -> Result<NetConfig, ConfigError> {
        let addrs = |key: &'static str, v: &[String]| -> Result<Vec<Multiaddr>, ConfigError> {
            v.iter()
                .map(|s| {
                    s.parse::<Multiaddr>().map_err(|e| ConfigError::Invalid {
                        key,
                        why: format!("{s:?} is not a multiaddress: {e}"),
                    })
                })
                .collect()
        };
        let classes = self
            .offer_classes
            .iter()
            .map(|c| {
                OfferClass::parse(c).ok_or_else(|| ConfigError::Invalid {
                    key: "offer_classes",
                    why: format!("{c:?} is not one of cpu, gpu-sm7, gpu-sm8, gpu-sm9plus"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.announce_every_secs == 0 || self.announce_every_secs >= self.offer_ttl_secs {
            return Err(ConfigError::Invalid {
                key: "announce_every_secs",
                why: format!(
                    "{} must be above 0 and below offer_ttl_secs ({}), so offers are renewed before they expire",
                    self.announce_every_secs, self.offer_ttl_secs
                ),
            });
        }
        let listen = addrs("listen", &self.listen)?;
        if let Some(quic) = listen
            .iter()
            .find(|a| !crate::net::QUIC && crate::net::is_quic(a))
        {
            return Err(ConfigError::Invalid {
                key: "listen",
                why: format!(
                    "{quic} is a QUIC address, and this `sietch` was built without QUIC (the \
                     demo's build, target/demo): listen on TCP only, or use the binary `cargo \
                     build -p sietch-cli` makes"
                ),
            });
        }
        Ok(NetConfig {
            listen,
            bootstrap: addrs("bootstrap", &self.bootstrap)?,
            mdns: self.mdns,
            relay_server: self.relay_server,
            relays: addrs("relays", &self.relays)?,
            autonat_only_global: !self.autonat_private,
            offer_classes: classes,
            version: self.protocol_version()?,
            ..NetConfig::default()
        })
    }

    /// Checks every value: the network's settings, the provider's limits and the escrow
    /// address.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.net_config()?;
        if self.max_concurrent_jobs == 0 {
            return Err(ConfigError::Invalid {
                key: "max_concurrent_jobs",
                why: "must be at least 1".into(),
            });
        }
        if self.blob_quota_bytes < crate::store::DEFAULT_MAX_BLOB_BYTES {
            return Err(ConfigError::Invalid {
                key: "blob_quota_bytes",
                why: format!(
                    "{} is under the largest single blob ({} bytes)",
                    self.blob_quota_bytes,
                    crate::store::DEFAULT_MAX_BLOB_BYTES
                ),
            });
        }
        if self.max_job_memory_bytes < 64 * 1024 {
            return Err(ConfigError::Invalid {
                key: "max_job_memory_bytes",
                why: format!(
                    "{} is under one WebAssembly page (65536 bytes)",
                    self.max_job_memory_bytes
                ),
            });
        }
        self.escrow_address()?;
        if self.rpc_url.is_some() != self.escrow.is_some() {
            return Err(ConfigError::Invalid {
                key: "rpc_url",
                why: "rpc_url and escrow go together: set both to use a chain, or neither".into(),
            });
        }
        if let Some(u) = &self.rpc_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "rpc_url",
                why: format!("{u:?} is not an http:// or https:// URL"),
            });
        }
        if self.max_lanes == 0 {
            return Err(ConfigError::Invalid {
                key: "max_lanes",
                why: "must be at least 1".into(),
            });
        }
        if self.test_cheat_ppm > 1_000_000 || self.test_withhold_ppm > 1_000_000 {
            return Err(ConfigError::Invalid {
                key: "test_cheat_ppm",
                why: "at most 1000000 (every job)".into(),
            });
        }
        if let Err(why) = crate::provider::adversary::Poison::parse(&self.test_cheat_outputs) {
            return Err(ConfigError::Invalid {
                key: "test_cheat_outputs",
                why,
            });
        }
        self.http.check()?;
        self.keys.check()?;
        self.finality.check()?;
        self.transactions.check()?;
        self.chain.check()?;
        if self.test_undeliver > 2 {
            return Err(ConfigError::Invalid {
                key: "test_undeliver",
                why: "0, 1 (not to the buyer) or 2 (nor to the verifiers)".into(),
            });
        }
        Ok(())
    }

    /// The escrow's address, or zero when no chain is configured.
    pub fn escrow_address(&self) -> Result<sietch_market::Address, ConfigError> {
        match &self.escrow {
            None => Ok(sietch_market::Address::ZERO),
            Some(a) => a.parse().map_err(|e| ConfigError::Invalid {
                key: "escrow",
                why: format!("{a:?} is not a 20-byte hex address: {e}"),
            }),
        }
    }

    /// The configuration as TOML (what `sietch node config` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The explorer's assets: the configured directory, and only it (a node started inside
    /// someone else's checkout must not serve that checkout's JavaScript).
    pub fn explorer(&self) -> Option<PathBuf> {
        self.explorer_dir.clone()
    }

    /// How often the provider re-announces.
    pub fn announce_every(&self) -> Duration {
        Duration::from_secs(self.announce_every_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses_back_to_the_defaults() {
        let t = NodeConfig::template();
        let uncommented: String = t
            .lines()
            .filter(|l| {
                l.starts_with("# ") && !l.starts_with("# Sietch") && !l.starts_with("# Precedence")
            })
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        let parsed: NodeConfig = toml::from_str(&uncommented).unwrap();
        assert_eq!(parsed, NodeConfig::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "listne = []\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("listne"), "{e}");

        let c = NodeConfig {
            bootstrap: vec!["not an address".into()],
            ..NodeConfig::default()
        };
        let e = c.net_config().unwrap_err().to_string();
        assert!(e.contains("bootstrap"), "{e}");

        let c = NodeConfig {
            offer_classes: vec!["gpu".into()],
            ..NodeConfig::default()
        };
        assert!(
            c.net_config()
                .unwrap_err()
                .to_string()
                .contains("offer_classes")
        );

        let c = NodeConfig {
            announce_every_secs: 900,
            ..NodeConfig::default()
        };
        assert!(c.net_config().is_err());

        let c = NodeConfig {
            test_protocol_version: "1.0".into(),
            ..NodeConfig::default()
        };
        let e = c.net_config().unwrap_err().to_string();
        assert!(e.contains("test_protocol_version"), "{e}");
        let c = NodeConfig {
            test_protocol_version: "1.0.0".into(),
            ..NodeConfig::default()
        };
        assert_eq!(c.net_config().unwrap().version.to_string(), "1.0.0");

        let c = NodeConfig {
            escrow: Some("0x12".into()),
            ..NodeConfig::default()
        };
        assert!(c.check().unwrap_err().to_string().contains("escrow"));
        let c = NodeConfig {
            max_concurrent_jobs: 0,
            ..NodeConfig::default()
        };
        assert!(
            c.check()
                .unwrap_err()
                .to_string()
                .contains("max_concurrent_jobs")
        );
        assert!(NodeConfig::default().check().is_ok());
    }

    #[test]
    fn a_missing_file_is_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            NodeConfig::load(&dir.path().join("none.toml")).unwrap(),
            NodeConfig::default()
        );
    }
}
