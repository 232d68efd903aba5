//! `sietch`: the node binary. A thin `main`; each subcommand lives in `cmd/`.

mod cmd;

use clap::Parser;

/// mimalloc rather than the system allocator: a node's networking allocates and frees small
/// buffers at a high rate (every frame, message and stream), and glibc's malloc spent a fifth
/// of the CPU of a 500-node gossip simulation in allocation and consolidation; mimalloc halved
/// the simulation's p95 propagation time (docs/benchmarks.md). Built without transparent
/// huge pages (`no_thp`): with them one node ingested gossip at half the rate (page faults
/// zeroing 2 MiB pages).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = cmd::Cli::parse();
    sietch_node::logs::init();
    cli.run()
}
