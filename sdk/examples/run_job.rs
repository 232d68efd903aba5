//! Submits a job to a node and follows it to its verified result, with the SDK alone.
//!
//! ```sh
//! cargo run -p sietch-sdk --example run_job -- <node data dir> <module.wasm> [stdin file]
//! ```
//!
//! The node (`sietch node run`, or the buyer of `sietch devnet`) must be running; the data
//! directory gives its API address and token.

use std::path::PathBuf;

use futures::StreamExt;
use sietch_sdk::{Client, Job};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(module)) = (args.next(), args.next()) else {
        eprintln!("usage: run_job <node data dir> <module.wasm> [stdin file]");
        std::process::exit(2);
    };
    let client = Client::from_data_dir(&PathBuf::from(dir))?;
    let mut job = Job::new(std::fs::read(&module)?);
    if let Some(stdin) = args.next() {
        job = job.stdin(std::fs::read(stdin)?);
    }
    let (id, mut progress) = client.submit_and_follow(&job).await?;
    println!("submitted job {id}");
    while let Some(event) = progress.next().await {
        let event = event?;
        println!("  {}", event.kind);
    }
    let done = client
        .wait(&id, std::time::Duration::from_secs(120))
        .await?;
    println!("job {id}: {} (provider {})", done.state, done.counterparty);
    if let Some(out) = done.outputs {
        println!("{}", String::from_utf8_lossy(&out.stdout()?));
    }
    if let Some(evidence) = client.evidence(&id).await? {
        println!("evidence against the provider: {:?}", evidence.decision);
    }
    Ok(())
}
