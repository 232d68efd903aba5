//! `sietch completions SHELL`: a completion script for the shell, on stdout.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell. Install e.g. with
    /// `sietch completions bash > ~/.local/share/bash-completion/completions/sietch`.
    shell: Shell,
}

pub(crate) fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "sietch", &mut std::io::stdout());
    Ok(())
}
