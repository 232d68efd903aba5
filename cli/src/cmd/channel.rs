//! `sietch channel`: the node's payment channels, and funding one ahead of jobs.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::client::{Target, block_on, print_json, short, show, table, tokens};

#[derive(Debug, Args)]
pub(crate) struct ChannelArgs {
    #[command(subcommand)]
    command: ChannelCommand,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum ChannelCommand {
    /// List the node's channels: provider, deposit, what its vouchers owe so far.
    List,
    /// Put tokens into a channel to a provider (tops one up, or opens one). Jobs fund their
    /// channels by themselves; this puts the money in place first.
    Fund {
        /// The provider's EVM address (`sietch offers` lists them).
        provider: String,
        /// How much, in tokens (e.g. `2.5`).
        tokens: String,
    },
}

/// `tokens` (a decimal number of 18-decimal tokens) in base units.
pub(crate) fn base_units(tokens: &str) -> anyhow::Result<u128> {
    let (whole, frac) = tokens.split_once('.').unwrap_or((tokens, ""));
    anyhow::ensure!(
        !whole.is_empty() || !frac.is_empty(),
        "{tokens:?} is not an amount of tokens: write it like 2.5"
    );
    let w: u128 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .with_context(|| format!("{tokens:?} is not an amount of tokens: write it like 2.5"))?
    };
    let f: u128 = if frac.is_empty() {
        0
    } else {
        anyhow::ensure!(frac.len() <= 18, "{tokens:?} has more than 18 decimals");
        format!("{frac:0<18}")
            .parse()
            .with_context(|| format!("{tokens:?} is not an amount of tokens: write it like 2.5"))?
    };
    w.checked_mul(10u128.pow(18))
        .and_then(|x| x.checked_add(f))
        .with_context(|| format!("{tokens:?} is too large"))
}

pub(crate) fn run(args: ChannelArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            ChannelCommand::List => {
                let chans = args.target.client()?.channels().await?;
                if args.target.json {
                    return print_json(&chans);
                }
                if chans.is_empty() {
                    println!(
                        "no channels yet: the node opens one per provider when it sends a job (or `sietch channel fund`)"
                    );
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = chans
                    .iter()
                    .map(|c| {
                        vec![
                            short(&c.channel),
                            short(&c.provider),
                            tokens(&c.deposit),
                            tokens(&c.cumulative),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["channel", "provider", "deposit", "owed (vouchers)"],
                        &rows
                    )
                );
            }
            ChannelCommand::Fund {
                provider,
                tokens: amount,
            } => {
                let units = base_units(&amount)?;
                anyhow::ensure!(units > 0, "the amount is zero");
                let client = args.target.writer()?;
                let waiting = super::progress::Progress::start(
                    args.target.show(),
                    format!(
                        "funding a channel to {} with {amount} tokens: waiting for the chain to \
                         take the transaction",
                        show(&short(&provider))
                    ),
                );
                let channel = client.fund(&provider, units).await;
                drop(waiting);
                let channel = channel?;
                if args.target.json {
                    return print_json(
                        &serde_json::json!({"channel": channel, "provider": provider, "amount": units.to_string()}),
                    );
                }
                println!(
                    "funded channel {} to {provider} with {amount} tokens",
                    show(&channel)
                );
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::base_units;

    #[test]
    fn token_amounts_parse_exactly() {
        assert_eq!(base_units("1").unwrap(), 10u128.pow(18));
        assert_eq!(base_units("2.5").unwrap(), 25 * 10u128.pow(17));
        assert_eq!(base_units("0.000000000000000001").unwrap(), 1);
        assert!(base_units("1.0000000000000000001").is_err());
        assert!(base_units("lots").is_err());
        assert!(base_units("").is_err());
    }
}
