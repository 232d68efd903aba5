//! `sietch`: the node binary. A thin `main`; each subcommand lives in `cmd/`.

mod cmd;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cmd::Cli::parse();
    cli.run()
}
