//! What the commands that talk to a running node share: which node (`--data-dir`, or
//! `--api` and `--token`), output as a table or as JSON (`--json`), and token amounts shown
//! as tokens.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sietch_sdk::Client;

/// Which node to talk to.
#[derive(Debug, Clone, Args)]
pub(crate) struct Target {
    /// The node's data directory: its API address (config.toml) and token (api-token).
    #[arg(long, env = "SIETCH_DATA_DIR", default_value_os_t = super::default_data_dir(), global = true)]
    data_dir: PathBuf,
    /// The node's API instead, e.g. http://127.0.0.1:7077 (reads need no token).
    #[arg(long, env = "SIETCH_API_URL", global = true)]
    api: Option<String>,
    /// The API token for writes (default: the data directory's api-token).
    #[arg(long, env = "SIETCH_API_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print JSON (stable field names, for scripts) instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

impl Target {
    /// A client for the chosen node.
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let mut c = match &self.api {
            Some(url) => Client::new(url)?,
            None => Client::from_data_dir(&self.data_dir).with_context(|| {
                format!(
                    "no node in {} (run `sietch init` and `sietch node run`, or pass --api)",
                    self.data_dir.display()
                )
            })?,
        };
        if let Some(t) = &self.token {
            c = c.with_token(t);
        } else if self.api.is_some()
            && let Ok(t) = std::fs::read_to_string(self.data_dir.join("api-token"))
        {
            c = c.with_token(t.trim());
        }
        Ok(c)
    }
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

/// Base units (a decimal string) as tokens of 18 decimals, e.g. `0.000081`.
pub(crate) fn tokens(base_units: &str) -> String {
    let Ok(v) = base_units.parse::<u128>() else {
        return base_units.to_owned();
    };
    let unit = 1_000_000_000_000_000_000u128;
    let frac = format!("{:018}", v % unit);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}", v / unit)
    } else {
        format!("{}.{frac}", v / unit)
    }
}

/// A text table: columns padded to their widest cell.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
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
        out.push_str(&line(r.clone()));
        out.push('\n');
    }
    out
}

/// `0x1234…abcd` for a long hex string.
pub(crate) fn short(hex: &str) -> String {
    if hex.len() <= 14 {
        return hex.to_owned();
    }
    format!("{}…{}", &hex[..8], &hex[hex.len() - 4..])
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
        assert_eq!(
            table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]),
            "a    bb\nxxx  y\n"
        );
        assert_eq!(short("0x0123456789abcdef0123"), "0x012345…0123");
    }
}
