//! What the commands that talk to a running node share: which node (`--data-dir`, or
//! `--api` and `--token`), output as a table or as JSON (`--json`), token amounts shown
//! as tokens, and text from the node or a peer made safe for a terminal.
//!
//! The API token is write access to a node, so it goes only where it belongs: the data
//! directory's token only to that directory's own node (the `api` address of its
//! `config.toml`), a `--token` to the node it names; and the SDK sends either only on writes.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sietch_node::chain::token;
use sietch_node::config::{CONFIG_FILE, NodeConfig};
use sietch_sdk::Client;

/// Which node to talk to.
#[derive(Debug, Clone, Args)]
pub(crate) struct Target {
    /// The node's data directory: its API address (config.toml) and, for writes, its token
    /// (api-token).
    #[arg(long, env = "SIETCH_DATA_DIR", default_value_os_t = super::default_data_dir(), global = true)]
    data_dir: PathBuf,
    /// Another node's API, e.g. http://127.0.0.1:7077. Reads need no token. The data
    /// directory's token goes only to the address in its config.toml: for writes to any
    /// other node, pass its --token.
    #[arg(long, env = "SIETCH_API_URL", global = true)]
    api: Option<String>,
    /// The API token, sent on writes only (default: the data directory's api-token, sent
    /// only to that directory's node).
    #[arg(long, env = "SIETCH_API_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print JSON (stable field names, for scripts) instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Show what a command waits for, and for how long, on stderr even when it is not a
    /// terminal (plain lines) or with --json (default: only on a terminal, never with --json).
    #[arg(long, global = true)]
    pub(crate) progress: bool,
}

impl Target {
    /// How the waits of this command show their progress (`--json`, `--progress`, stderr).
    pub(crate) fn show(&self) -> super::progress::Show {
        super::progress::Show::choose(self.json, self.progress)
    }

    /// A client for the chosen node, for reads (and for writes when it has a token).
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Ok(self.resolve()?.0)
    }

    /// A client for the chosen node that can write: with a token, or a clear error that says
    /// why none is sent and how to pass one (before anything is uploaded).
    pub(crate) fn writer(&self) -> anyhow::Result<Client> {
        let (client, why) = self.resolve()?;
        if client.has_token() {
            return Ok(client);
        }
        anyhow::bail!(
            "{} needs an API token for this write, and {}. If that node is yours, pass its \
             token with --token TOKEN (or SIETCH_API_TOKEN); its `sietch init` wrote it to \
             <its data dir>/api-token",
            client.url(),
            why.unwrap_or_else(|| "none was given".into())
        )
    }

    fn explicit_token(&self) -> Option<&str> {
        self.token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// The client, and when it has no token, why.
    fn resolve(&self) -> anyhow::Result<(Client, Option<String>)> {
        let Some(url) = &self.api else {
            // The data directory's own node: its address and its token, together.
            let token = match self.explicit_token() {
                Some(t) => t.to_owned(),
                None => std::fs::read_to_string(self.data_dir.join("api-token"))
                    .with_context(|| {
                        format!(
                            "no node in {} (run `sietch init` and `sietch node run`, or pass --api)",
                            self.data_dir.display()
                        )
                    })?
                    .trim()
                    .to_owned(),
            };
            let api = self.data_dir_api()?;
            let client = Client::new(&format!("http://{api}"))?.with_token(&token);
            return Ok((client, None));
        };
        let client = Client::new(url)?;
        if let Some(t) = self.explicit_token() {
            return Ok((client.with_token(t), None));
        }
        let token_file = self.data_dir.join("api-token");
        let Ok(token) = std::fs::read_to_string(&token_file) else {
            return Ok((client, None));
        };
        match self.data_dir_api() {
            Ok(own) if same_node(url, own) => Ok((client.with_token(token.trim()), None)),
            Ok(own) => Ok((
                client,
                Some(format!(
                    "the token of {} is sent only to its own node, http://{own} (config.toml)",
                    self.data_dir.display()
                )),
            )),
            Err(e) => Ok((
                client,
                Some(format!(
                    "the token of {} is not sent: its node's address is unknown ({e:#})",
                    self.data_dir.display()
                )),
            )),
        }
    }

    /// The API address of the data directory's node, from its `config.toml` (the defaults
    /// when there is none).
    fn data_dir_api(&self) -> anyhow::Result<SocketAddr> {
        Ok(NodeConfig::load(&self.data_dir.join(CONFIG_FILE))?.api)
    }
}

/// Whether `url` (`http://host:port`) is the API at `own`: the same IP address and port, or
/// a loopback address on that port when the node listens on every address (`0.0.0.0`).
/// Names (`localhost`, a host name) are never the same node: a name can resolve anywhere.
fn same_node(url: &str, own: SocketAddr) -> bool {
    let Some(addr) = url
        .strip_prefix("http://")
        .map(|r| r.trim_end_matches('/'))
        .and_then(|r| r.parse::<SocketAddr>().ok())
    else {
        return false;
    };
    addr == own
        || (own.ip().is_unspecified()
            && addr.port() == own.port()
            && (addr.ip().is_loopback() || addr.ip().is_unspecified()))
}

/// Text that came from the node or a peer (notes, refusals, file names, addresses), with
/// whatever a terminal would act on escaped (`sietch_market::printable`).
pub(crate) fn show(text: &str) -> String {
    sietch_market::printable(text)
}

/// An error's text made safe for a terminal, line by line: control characters, escape
/// sequences and direction overrides from a node's answer are escaped; the lines of a
/// message stay lines and backslashes stay as they are (they are not escapes here).
pub(crate) fn safe_error(e: &anyhow::Error) -> anyhow::Error {
    let line = |l: &str| {
        l.split('\\')
            .map(sietch_market::printable)
            .collect::<Vec<_>>()
            .join("\\")
    };
    let text = |s: String| s.lines().map(line).collect::<Vec<_>>().join("\n");
    let mut chain: Vec<String> = e.chain().map(|c| text(c.to_string())).collect();
    let Some(root) = chain.pop() else {
        return anyhow::anyhow!("error");
    };
    chain
        .into_iter()
        .rev()
        .fold(anyhow::Error::msg(root), |err, ctx| err.context(ctx))
}

/// The error with what to do about it: an SDK error (the node unreachable, a stable error
/// code of the node, no offer matching a job, ...) becomes one short message that ends with
/// the fix; the contexts around it are kept. Other errors are left as they are.
pub(crate) fn with_fix(e: anyhow::Error) -> anyhow::Error {
    let chain: Vec<&(dyn std::error::Error + 'static)> = e.chain().collect();
    let Some((at, fixed)) = chain.iter().enumerate().find_map(|(i, c)| {
        c.downcast_ref::<sietch_sdk::Error>()
            .and_then(fixed)
            .map(|f| (i, f))
    }) else {
        return e;
    };
    let outer: Vec<String> = chain.iter().take(at).map(ToString::to_string).collect();
    outer
        .into_iter()
        .rev()
        .fold(anyhow::Error::msg(fixed), |err, ctx| err.context(ctx))
}

/// An SDK error's message with its fix, when there is one to give.
fn fixed(e: &sietch_sdk::Error) -> Option<String> {
    use sietch_sdk::Error as E;
    Some(match e {
        E::Unreachable { url, source } => {
            let mut root: &dyn std::error::Error = source;
            while let Some(next) = root.source() {
                root = next;
            }
            format!(
                "cannot reach the node at {url} ({root}): is it running? Start it with \
                 `sietch node run`, or pass --api URL for another node"
            )
        }
        E::NoMatch {
            message, blocker, ..
        } => format!("{message}\n{}", no_match_fix(blocker)),
        E::Api { code, message, .. } => {
            let fix = match code.as_str() {
                "token_required" | "bad_token" => {
                    "pass the node's token with --token TOKEN (or SIETCH_API_TOKEN): `sietch \
                     init` wrote it to <its data dir>/api-token"
                }
                "no_such_job" => "`sietch job list` lists this node's jobs",
                "not_found" | "unknown" => {
                    "is --api the address of a sietch node's API (`api` in its config.toml)?"
                }
                "event_streams_full" | "event_streams_per_client" => {
                    "too many event streams are open: close other `sietch job submit`s or \
                     explorer tabs, or try again in a moment"
                }
                "funding_failed" => {
                    "check the node's chain and its account's balance (`sietch node run` \
                     prints both)"
                }
                _ => return None,
            };
            format!("the node refused ({code}): {message}\n{fix}")
        }
        E::Decode(why) => format!(
            "the node's answer is not one this sietch understands ({why}): is --api a sietch \
             node's API, of the same version as this sietch ({})?",
            env!("CARGO_PKG_VERSION")
        ),
        E::Timeout(id) => {
            format!("job {id} did not finish in time; `sietch job status {id} --wait` follows it")
        }
        E::BadId(id) => format!(
            "{id:?} is not a job id: that is 0x and 64 hex digits (`sietch job list` lists them)"
        ),
        _ => return None,
    })
}

/// What to do when no offer passed the market's filter `blocker` (`gpu`, `cores`, ...).
pub(crate) fn no_match_fix(blocker: &str) -> &'static str {
    match blocker {
        "live" => {
            "no provider's offer has reached this node yet: check its peers (`sietch node run` \
             prints them), wait a few seconds and retry; `sietch offers` lists the offers"
        }
        "gpu" => {
            "no offer has the GPU asked for: `sietch offers` lists the GPUs offered (its --gpu-* \
             flags filter them); ask for fewer or other GPUs (--gpus, --gpu-model, --gpu-memory, \
             --gpu-compute), or none to run on CPUs"
        }
        "cores" => "no offer has that many CPU cores: `sietch offers` lists the cores offered",
        "memory" => {
            "lower --memory; `sietch offers --min-memory-gib N` lists the offers with N GiB"
        }
        "inputs" => "make the job's inputs smaller: no offer takes one that large",
        "features" => "no offer lists those runtime features: `sietch offers` lists the offers",
        "price" => {
            "raise --price-cap, or lower --fuel (and --timeout for a GPU job): the cap must \
             cover the most the job can cost"
        }
        "stake" => "lower --price-cap or raise --sampling-ppm: no provider staked enough for it",
        _ => "`sietch offers` lists the offers this node knows",
    }
}

/// The filter that stopped a job whose failure `note` is the market's "no offer matches"
/// explanation (as a job's record keeps it), or `None` for another failure.
pub(crate) fn no_match_blocker(note: &str) -> Option<&'static str> {
    if !note.contains("no offer matches") {
        return None;
    }
    Some(
        [
            ("holds no live offer", "live"),
            ("none is live", "live"),
            ("none has the GPU", "gpu"),
            ("CPU cores; the most offered", "cores"),
            ("the most any offer has is", "memory"),
            ("the largest any offer takes", "inputs"),
            ("none lists all of the features", "features"),
            ("more than your cap", "price"),
            ("too little stake", "stake"),
            ("never checked (sampling rate 0%)", "stake"),
        ]
        .into_iter()
        .find(|(phrase, _)| note.contains(phrase))
        .map_or("unknown", |(_, b)| b),
    )
}

/// Runs an async command on a fresh runtime.
pub(crate) fn block_on<T>(
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// How the node's settlement token reads: its decimals and symbol, from `GET /api/v1/node`
/// (18 and "tokens" when the node has no chain, is older, or does not answer). Amounts stay
/// base units in `--json` output, as the API sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    /// The token's decimals.
    pub(crate) decimals: u8,
    /// Its symbol (cut to what reads safely on a terminal).
    pub(crate) symbol: String,
}

impl Default for Unit {
    fn default() -> Self {
        Self {
            decimals: token::DEFAULT_DECIMALS,
            symbol: token::DEFAULT_SYMBOL.to_owned(),
        }
    }
}

impl Unit {
    /// The unit of the node `client` talks to (the default when it does not say).
    pub(crate) async fn of(client: &Client) -> Self {
        client
            .node()
            .await
            .ok()
            .and_then(|n| n.token)
            .map(|t| Self::new(t.decimals, &t.symbol))
            .unwrap_or_default()
    }

    /// A unit from what a node said (its text cut to what reads safely).
    pub(crate) fn new(decimals: u8, symbol: &str) -> Self {
        let symbol: String = symbol
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '$'))
            .take(16)
            .collect();
        Self {
            decimals: decimals.min(token::MAX_DECIMALS),
            symbol: if symbol.is_empty() {
                token::DEFAULT_SYMBOL.to_owned()
            } else {
                symbol
            },
        }
    }

    /// Base units (a decimal string) in the token's units, exact: `0.000081`; what is not a
    /// number comes back as it is.
    pub(crate) fn amount(&self, base_units: &str) -> String {
        match base_units.parse::<u128>() {
            Ok(v) => token::format_units(v, self.decimals, None),
            Err(_) => base_units.to_owned(),
        }
    }

    /// [`Self::amount`] with the symbol: `2.5 USDC`.
    pub(crate) fn show(&self, base_units: &str) -> String {
        format!("{} {}", self.amount(base_units), self.symbol)
    }

    /// A decimal amount in the token's units (`2.5`) as base units.
    pub(crate) fn parse(&self, text: &str) -> anyhow::Result<u128> {
        Ok(token::parse_units(text, self.decimals)?)
    }
}

/// Base units at the default unit (18 decimals), for a reader with no node to ask.
pub(crate) fn tokens(base_units: &str) -> String {
    Unit::default().amount(base_units)
}

/// A text table: columns padded to their widest cell, every cell through [`show`].
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    // Every cell may hold a node's or a peer's text.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| show(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

/// `0x1234…abcd` for a long hex string (any string: cut on characters).
pub(crate) fn short(hex: &str) -> String {
    let n = hex.chars().count();
    if n <= 14 {
        return hex.to_owned();
    }
    let head: String = hex.chars().take(8).collect();
    let tail: String = hex.chars().skip(n - 4).collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_tables_read_well() {
        assert_eq!(tokens("0"), "0");
        assert_eq!(tokens("1500000000000000000"), "1.5");
        assert_eq!(tokens("81000000000000"), "0.000081");
        assert_eq!(tokens("not a number"), "not a number");
        let usdc = Unit::new(6, "USDC");
        assert_eq!(usdc.show("2500000"), "2.5 USDC");
        assert_eq!(usdc.amount("81"), "0.000081");
        assert_eq!(usdc.parse("2.5").unwrap(), 2_500_000);
        assert!(usdc.parse("0.0000001").is_err());
        assert_eq!(Unit::new(6, "\x1b[31m").symbol, "31m");
        assert_eq!(Unit::new(6, "\u{7}").symbol, "tokens");
        assert_eq!(
            table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]),
            "a    bb\nxxx  y\n"
        );
        assert_eq!(short("0x0123456789abcdef0123"), "0x012345…0123");
        // Not hex: cut on characters, never inside one.
        assert_eq!(short("ééééééééééééééé"), "éééééééé…éééé");
        assert_eq!(
            table(&["a"], &[vec!["\x1b]0;pwned\x07".into()]]),
            "a\n\\u{1b}]0;pwned\\u{7}\n"
        );
    }

    #[test]
    fn the_data_dir_token_goes_to_its_own_node_only() {
        let own: SocketAddr = "127.0.0.1:7077".parse().unwrap();
        assert!(same_node("http://127.0.0.1:7077", own));
        assert!(same_node("http://127.0.0.1:7077/", own));
        for other in [
            "http://127.0.0.1:7078",
            "http://127.0.0.2:7077",
            "http://localhost:7077",
            "http://evil.example:7077",
            "https://127.0.0.1:7077",
            "127.0.0.1:7077",
        ] {
            assert!(!same_node(other, own), "{other}");
        }
        let any: SocketAddr = "0.0.0.0:7077".parse().unwrap();
        assert!(same_node("http://127.0.0.1:7077", any));
        assert!(same_node("http://[::1]:7077", any));
        assert!(!same_node("http://10.0.0.1:7077", any));
    }

    #[test]
    fn sdk_errors_end_with_their_fix() {
        let fix = |e: sietch_sdk::Error| format!("{:#}", with_fix(anyhow::Error::new(e)));
        let no_match = fix(sietch_sdk::Error::NoMatch {
            message: "no offer matches: none has the GPU you need".into(),
            blocker: "gpu".into(),
            funnel: Vec::new(),
        });
        assert!(no_match.contains("--gpu-model"), "{no_match}");
        let token = fix(sietch_sdk::Error::Api {
            status: 401,
            code: "token_required".into(),
            message: "writes need a token".into(),
        });
        assert!(token.contains("--token TOKEN"), "{token}");
        let timeout = fix(sietch_sdk::Error::Timeout("0x12".into()));
        assert!(
            timeout.contains("`sietch job status 0x12 --wait`"),
            "{timeout}"
        );
        // The contexts around it stay; an error with no fix is left as it is.
        let e = anyhow::Error::new(sietch_sdk::Error::BadId("x".into())).context("reading");
        let shown = format!("{:#}", with_fix(e));
        assert!(
            shown.starts_with("reading: ") && shown.contains("`sietch job list`"),
            "{shown}"
        );
        let other = format!("{:#}", with_fix(anyhow::anyhow!("plain")));
        assert_eq!(other, "plain");
    }

    #[test]
    fn a_failed_jobs_note_tells_its_blocker() {
        assert_eq!(no_match_blocker("the provider vanished"), None);
        for (note, blocker) in [
            (
                "no offer matches: the order book holds no live offer",
                "live",
            ),
            (
                "no offer matches: 3 live offers; none has the GPU you need (1× H100)",
                "gpu",
            ),
            (
                "no offer matches: 2 live offers; all 2 cost more than your cap of 5",
                "price",
            ),
            (
                "no offer matches: 1 live offers; the job asks for 2 GiB of memory; the most any offer has is 1 GiB",
                "memory",
            ),
            ("no offer matches: something new", "unknown"),
        ] {
            assert_eq!(no_match_blocker(note), Some(blocker), "{note}");
            assert!(!no_match_fix(blocker).is_empty());
        }
    }

    #[test]
    fn errors_are_escaped_line_by_line() {
        let e = anyhow::anyhow!("the node refused: \x1b[2J\nline two \\ ok").context("outer\x07");
        let safe = format!("{:#}", safe_error(&e));
        assert_eq!(
            safe,
            "outer\\u{7}: the node refused: \\u{1b}[2J\nline two \\ ok"
        );
    }
}
