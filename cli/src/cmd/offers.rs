//! `sietch offers`: the live offers a node knows, filterable like a buyer would.

use clap::Args;

use super::client::{Target, block_on, print_json, short, table, tokens};

#[derive(Debug, Args)]
pub(crate) struct OffersArgs {
    #[command(flatten)]
    target: Target,
    /// Only offers with at least this much memory for a job, in GiB.
    #[arg(long, value_name = "GIB")]
    min_memory_gib: Option<f64>,
    /// Only offers with at least this many CPU cores.
    #[arg(long)]
    min_cores: Option<u32>,
}

pub(crate) fn run(args: OffersArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut offers = args.target.client()?.offers().await?;
        let min_mem = args
            .min_memory_gib
            .map(|g| (g * f64::from(1u32 << 30)) as u64);
        offers.retain(|o| {
            min_mem.is_none_or(|m| o.memory_bytes >= m)
                && args.min_cores.is_none_or(|c| o.cpu_cores >= c)
        });
        offers.sort_by(|a, b| {
            let p = |o: &sietch_sdk::Offer| o.price_per_gfuel.parse::<u128>().unwrap_or(u128::MAX);
            p(a).cmp(&p(b)).then(a.evm_address.cmp(&b.evm_address))
        });
        if args.target.json {
            return print_json(&offers);
        }
        if offers.is_empty() {
            println!(
                "no offers yet: providers announce every few seconds; is the node connected? (`sietch node run` prints its peers)"
            );
            return Ok(());
        }
        let rows: Vec<Vec<String>> = offers
            .iter()
            .map(|o| {
                vec![
                    short(&o.evm_address),
                    o.cpu_cores.to_string(),
                    format!("{:.1} GiB", o.memory_bytes as f64 / f64::from(1u32 << 30)),
                    tokens(&o.price_per_gfuel),
                    tokens(&o.stake),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &["provider", "cores", "memory", "price/10^9 fuel", "stake"],
                &rows
            )
        );
        Ok(())
    })
}
