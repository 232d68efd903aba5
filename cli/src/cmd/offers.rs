//! `sietch offers`: the live offers a node knows, filterable like a buyer would (the GPU
//! flags are `job submit`'s, and filter as the market's GPU filter does).

use clap::Args;
use sietch_market::{ComputeCapability, Gpu};

use super::client::{Target, Unit, block_on, print_json, short, table};
use super::job_flags::GpuFlags;

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
    /// Only offers with the GPUs a job with these flags needs (the flags of `job submit`).
    #[command(flatten)]
    gpu: GpuFlags,
}

/// An offer's GPUs as the market compares them (a compute capability it cannot read counts
/// as 0.0).
fn market_gpus(o: &sietch_sdk::Offer) -> Vec<Gpu> {
    o.gpus
        .iter()
        .map(|g| {
            let (major, minor) = g
                .compute_capability
                .split_once('.')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .unwrap_or((0, 0));
            Gpu {
                model: g.model.clone(),
                memory_bytes: g.memory_bytes,
                compute_capability: ComputeCapability::new(major, minor),
                driver: String::new(),
            }
        })
        .collect()
}

/// An offer's GPUs for the table: `1× NVIDIA H100 80GB HBM3 (79.1 GiB, 9.0)`, or `-`.
fn gpus_cell(o: &sietch_sdk::Offer) -> String {
    let Some(first) = o.gpus.first() else {
        return "-".into();
    };
    let gib = first.memory_bytes as f64 / f64::from(1u32 << 30);
    let mut cell = format!(
        "{}× {} ({gib:.1} GiB, {})",
        o.gpus.len(),
        first.model,
        first.compute_capability
    );
    if o.gpus.iter().any(|g| g.model != first.model) {
        cell.push_str(", mixed");
    }
    cell
}

pub(crate) fn run(args: OffersArgs) -> anyhow::Result<()> {
    block_on(async move {
        let needs = args.gpu.needs()?;
        let client = args.target.client()?;
        let mut offers = client.offers().await?;
        let min_mem = args
            .min_memory_gib
            .map(|g| (g * f64::from(1u32 << 30)) as u64);
        offers.retain(|o| {
            min_mem.is_none_or(|m| o.memory_bytes >= m)
                && args.min_cores.is_none_or(|c| o.cpu_cores >= c)
                && needs.as_ref().is_none_or(|g| g.fits(&market_gpus(o)))
        });
        offers.sort_by(|a, b| {
            let p = |o: &sietch_sdk::Offer| o.price_per_gfuel.parse::<u128>().unwrap_or(u128::MAX);
            p(a).cmp(&p(b)).then(a.evm_address.cmp(&b.evm_address))
        });
        if args.target.json {
            return print_json(&offers);
        }
        if offers.is_empty() {
            if let Some(g) = &needs {
                println!(
                    "no offer has {}: ask for fewer or other GPUs, or none",
                    super::job_flags::describe_gpu(g)
                );
                return Ok(());
            }
            println!(
                "no offers yet: providers announce every few seconds; is the node connected? (`sietch node run` prints its peers)"
            );
            return Ok(());
        }
        let unit = Unit::of(&client).await;
        let rows: Vec<Vec<String>> = offers
            .iter()
            .map(|o| {
                vec![
                    short(&o.evm_address),
                    o.cpu_cores.to_string(),
                    format!("{:.1} GiB", o.memory_bytes as f64 / f64::from(1u32 << 30)),
                    gpus_cell(o),
                    unit.amount(&o.price_per_gfuel),
                    unit.amount(&o.stake),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "provider",
                    "cores",
                    "memory",
                    "gpus",
                    &format!("{}/10^9 fuel", unit.symbol),
                    &format!("stake ({})", unit.symbol),
                ],
                &rows
            )
        );
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_gpus_are_filtered_as_the_market_filters_them() {
        let offer: sietch_sdk::Offer = serde_json::from_value(serde_json::json!({
            "evm_address": "0x1", "peer_id": null, "cpu_cores": 8, "memory_bytes": 1,
            "price_per_gfuel": "1", "stake": "1", "expires_at": 0,
            "gpus": [{"model": "NVIDIA H100 80GB HBM3", "memory_bytes": 85_000_000_000u64,
                      "compute_capability": "9.0"}],
        }))
        .unwrap();
        assert_eq!(
            gpus_cell(&offer),
            "1× NVIDIA H100 80GB HBM3 (79.2 GiB, 9.0)"
        );
        let gpus = market_gpus(&offer);
        let needs = |model: &str, cc: (u8, u8), memory: u64| sietch_market::GpuNeeds {
            count: 1,
            models: vec![model.to_owned()],
            min_memory_bytes: memory,
            min_compute_capability: ComputeCapability::new(cc.0, cc.1),
        };
        assert!(!needs("h100", (9, 0), 80 << 30).fits(&gpus));
        assert!(needs("h100", (9, 0), 79 << 30).fits(&gpus));
        assert!(!needs("A100", (8, 0), 0).fits(&gpus));
        assert!(!needs("H100", (9, 1), 0).fits(&gpus));
        // An offer without GPUs (or from a node that does not list them).
        let cpu: sietch_sdk::Offer = serde_json::from_value(serde_json::json!({
            "evm_address": "0x1", "peer_id": null, "cpu_cores": 8, "memory_bytes": 1,
            "price_per_gfuel": "1", "stake": "1", "expires_at": 0,
        }))
        .unwrap();
        assert_eq!(gpus_cell(&cpu), "-");
        assert!(!needs("", (0, 0), 0).fits(&market_gpus(&cpu)));
    }
}
