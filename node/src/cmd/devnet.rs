//! `sietch devnet`: the one-command local demo.

use clap::Args;

/// Options of `sietch devnet`.
#[derive(Debug, Args)]
pub(crate) struct DevnetArgs {
    /// Number of provider nodes to start.
    #[arg(long, default_value_t = 3)]
    providers: u16,
}

pub(crate) fn run(args: DevnetArgs) -> anyhow::Result<()> {
    println!("sietch devnet ({} providers requested)", args.providers);
    println!("The full devnet (chain, providers, buyer, explorer) is not built yet.");
    Ok(())
}
