//! `sietch provider`: providers as the node sees them: stake on chain, reputation.

use clap::{Args, Subcommand};

use super::client::{Target, block_on, print_json, short, show, table, tokens};

#[derive(Debug, Args)]
pub(crate) struct ProviderArgs {
    #[command(subcommand)]
    command: ProviderCommand,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum ProviderCommand {
    /// List providers with stake, settled jobs, checks, slashes and reputation.
    List,
    /// One provider, by EVM address.
    Show {
        /// Its EVM address.
        address: String,
    },
}

pub(crate) fn run(args: ProviderArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut all = args.target.client()?.providers().await?;
        all.sort_by(|a, b| a.evm_address.cmp(&b.evm_address));
        match args.command {
            ProviderCommand::List => {
                if args.target.json {
                    return print_json(&all);
                }
                if all.is_empty() {
                    println!(
                        "no providers known yet: their offers arrive over gossip within seconds"
                    );
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|p| {
                        let r = &p.reputation;
                        vec![
                            short(&p.evm_address),
                            p.stake.as_deref().map_or("-".into(), tokens),
                            r.settled_jobs.to_string(),
                            format!("{}/{}", r.checks_passed, r.checks_passed + r.checks_failed),
                            r.slashes.to_string(),
                            format!("{:.2}", r.score),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "provider",
                            "stake",
                            "settled",
                            "checks passed",
                            "slashes",
                            "reputation"
                        ],
                        &rows
                    )
                );
            }
            ProviderCommand::Show { address } => {
                let Some(p) = all
                    .iter()
                    .find(|p| p.evm_address.eq_ignore_ascii_case(&address))
                else {
                    anyhow::bail!(
                        "no provider {address} among the {} this node knows (`sietch provider list`)",
                        all.len()
                    );
                };
                if args.target.json {
                    return print_json(p);
                }
                let r = &p.reputation;
                println!("provider      {}", show(&p.evm_address));
                println!(
                    "stake         {}",
                    show(
                        &p.stake
                            .as_deref()
                            .map_or("unknown (no chain)".into(), tokens)
                    )
                );
                println!("settled jobs  {}", r.settled_jobs);
                println!(
                    "checks        {} passed, {} failed",
                    r.checks_passed, r.checks_failed
                );
                println!("slashes       {}", r.slashes);
                println!("disputes      {}", r.disputes);
                println!("reputation    {:.3}", r.score);
            }
        }
        Ok(())
    })
}
