//! `sietch provider`: providers as the node sees them (stake on chain, reputation), and the
//! node itself as a provider (`status`: earnings, jobs, stake, channels, pre-flight check).

use clap::{Args, Subcommand};

use super::client::{Target, Unit, block_on, print_json, short, show, table};

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
    /// This node as a provider: earnings, jobs, checks, stake and the job values it allows,
    /// channels with what is owed, GPU, blob cache, and what stops it from earning.
    Status,
}

pub(crate) fn run(args: ProviderArgs) -> anyhow::Result<()> {
    if matches!(args.command, ProviderCommand::Status) {
        return block_on(async move {
            let client = args.target.client()?;
            let s = client.provider_status().await?;
            if args.target.json {
                return print_json(&s);
            }
            print!("{}", status_report(&s, &Unit::of(&client).await));
            Ok(())
        });
    }
    block_on(async move {
        let client = args.target.client()?;
        let mut all = client.providers().await?;
        let unit = Unit::of(&client).await;
        let tokens = |x: &str| unit.amount(x);
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
            ProviderCommand::Status => {}
        }
        Ok(())
    })
}

/// `word`, with an `s` unless `n` is 1.
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

/// `sietch provider status` as a readable report: what stops the provider first, then the
/// figures. Text from the node is printed with control characters escaped.
fn status_report(s: &sietch_sdk::ProviderStatus, unit: &Unit) -> String {
    let tokens = |x: &str| unit.amount(x);
    let sym = &unit.symbol;
    use std::fmt::Write;
    let mut out = String::new();
    let mut line = |text: String| {
        let _ = writeln!(out, "{text}");
    };
    let blocking = s
        .preflight
        .iter()
        .filter(|c| c.status == "blocking")
        .count();
    let warnings = s.preflight.iter().filter(|c| c.status == "warning").count();
    line(format!("provider   {}", show(&s.evm_address)));
    line(format!(
        "           {}",
        if !s.providing {
            "NOT PROVIDING: this node sells no compute".to_owned()
        } else if blocking > 0 {
            format!(
                "NOT EARNING: {blocking} blocking, {warnings} {}",
                plural(warnings, "warning")
            )
        } else if warnings > 0 {
            format!("earning, with {warnings} {}", plural(warnings, "warning"))
        } else {
            "earning: every check passes".to_owned()
        }
    ));
    line(String::new());
    line("pre-flight".into());
    for c in &s.preflight {
        let mark = match c.status.as_str() {
            "ok" => "ok      ",
            "warning" => "WARNING ",
            _ => "BLOCKING",
        };
        line(format!(
            "  {mark} {:<10} {}",
            show(&c.check),
            show(&c.message)
        ));
        if let Some(fix) = &c.fix {
            line(format!("           {:<10} fix: {}", "", show(fix)));
        }
    }
    if !s.providing {
        return out;
    }
    line(String::new());
    let j = &s.jobs;
    let count = |state: &str| j.by_state.get(state).copied().unwrap_or(0);
    line(format!(
        "jobs       {} run ({} paid, {} failed, {} refused); {} settled on chain",
        j.total,
        count("paid"),
        count("failed"),
        count("refused"),
        j.settled
    ));
    let r = &s.reputation;
    line(format!(
        "checks     {} passed, {} failed as this node counts them; {} withheld by buyers since \
         start; {} disputes, {} slashes",
        r.checks_passed, r.checks_failed, j.withheld_since_start, r.disputes, r.slashes
    ));
    let e = &s.earnings;
    let recent: Vec<String> = e
        .buckets
        .iter()
        .rev()
        .take(6)
        .rev()
        .map(|b| tokens(&b.amount))
        .collect();
    line(format!(
        "earned     {} {sym}{}",
        tokens(&e.total),
        if recent.is_empty() {
            String::new()
        } else {
            format!(
                " (last {} buckets of {} s: {})",
                recent.len(),
                e.bucket_secs,
                recent.join(", ")
            )
        }
    ));
    line(format!(
        "owed       {} {sym}, {} claimable, over {} channels",
        tokens(&s.owed),
        tokens(&s.claimable),
        s.channels_total
    ));
    match &s.chain {
        None => line("stake      unknown (no chain configured)".into()),
        Some(c) => line(format!(
            "stake      {} {sym} on chain (minStake {}, offer states {}){}",
            c.stake.as_deref().map_or("unknown".into(), tokens),
            c.min_stake.as_deref().map_or("unknown".into(), tokens),
            s.offer.as_ref().map_or("-".into(), |o| tokens(&o.stake)),
            c.credited
                .as_deref()
                .filter(|v| *v != "0")
                .map_or(String::new(), |v| format!("; {} credited", tokens(v)))
        )),
    }
    let caps: Vec<String> = s
        .value_caps
        .iter()
        .map(|v| {
            format!(
                "{}% checked: {}",
                f64::from(v.sampling_ppm) / 10_000.0,
                v.max_job_value.as_deref().map_or("any".into(), tokens)
            )
        })
        .collect();
    line(format!("job value  at most {}", caps.join("; ")));
    line(format!(
        "gpu        {}",
        if s.gpus.is_empty() {
            if s.offer_gpu {
                "none found".to_owned()
            } else {
                "not offered".to_owned()
            }
        } else {
            s.gpus
                .iter()
                .map(|g| {
                    format!(
                        "{} ({} MiB, compute {}, driver {})",
                        show(&g.model),
                        g.memory_bytes >> 20,
                        show(&g.compute_capability),
                        show(&g.driver)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    line(format!(
        "blobs      {} MiB of {} MiB in {} blobs",
        s.blobs.bytes >> 20,
        s.blobs.quota_bytes >> 20,
        s.blobs.count
    ));
    line(format!(
        "network    {} peers; AutoNAT {}; {} relays{}",
        s.network.peers,
        show(&s.network.reachability),
        s.network.relays,
        if s.network.relayed { ", relayed" } else { "" }
    ));
    if !s.channels.is_empty() {
        line(String::new());
        let rows: Vec<Vec<String>> = s
            .channels
            .iter()
            .map(|c| {
                vec![
                    short(&c.channel),
                    short(&c.buyer),
                    c.state.as_deref().map_or("?".into(), show),
                    tokens(&c.voucher),
                    c.paid.as_deref().map_or("?".into(), tokens),
                    tokens(&c.owed),
                    if c.claimable { "yes" } else { "no" }.into(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "channel",
                "buyer",
                "state",
                "voucher",
                "paid",
                "owed",
                "claimable",
            ],
            &rows,
        ));
    }
    out
}
