//! `sietch channel`: the node's payment channels, and funding one ahead of jobs.

use clap::{Args, Subcommand};

use super::client::{Target, Unit, block_on, print_json, short, show, table};

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
        /// How much, in the token's own units (e.g. `2.5`: 2.5 USDC on a 6-decimal USDC;
        /// the node says its token's decimals).
        tokens: String,
    },
}

pub(crate) fn run(args: ChannelArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            ChannelCommand::List => {
                let client = args.target.client()?;
                let chans = client.channels().await?;
                if args.target.json {
                    return print_json(&chans);
                }
                let unit = Unit::of(&client).await;
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
                            unit.amount(&c.deposit),
                            unit.amount(&c.cumulative),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "channel",
                            "provider",
                            &format!("deposit ({})", unit.symbol),
                            "owed (vouchers)",
                        ],
                        &rows
                    )
                );
            }
            ChannelCommand::Fund {
                provider,
                tokens: amount,
            } => {
                // Written like an amount before anything is asked of the node.
                sietch_node::chain::token::parse_units(&amount, 36)?;
                let client = args.target.writer()?;
                let unit = Unit::of(&client).await;
                let units = unit.parse(&amount)?;
                anyhow::ensure!(units > 0, "the amount is zero");
                let symbol = &unit.symbol;
                let waiting = super::progress::Progress::start(
                    args.target.show(),
                    format!(
                        "funding a channel to {} with {amount} {symbol}: waiting for the chain to \
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
                    "funded channel {} to {provider} with {amount} {symbol}",
                    show(&channel)
                );
            }
        }
        Ok(())
    })
}
