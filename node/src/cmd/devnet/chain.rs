//! The devnet's chain: a real anvil on 127.0.0.1 with a free port, and a provider to it.

use std::path::{Path, PathBuf};

use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};

/// Where the set-up script installs the pinned anvil, relative to the repository root.
const PINNED: &str = "tools/bin/anvil";

fn pinned_under(dir: &Path) -> Option<PathBuf> {
    let p = dir.join(PINNED);
    p.is_file().then_some(p)
}

/// The anvil binary: `$SIETCH_ROOT/tools/bin/anvil` (set by `scripts/env.sh`), else
/// `tools/bin/anvil` in the current directory or one above it, else above the `sietch`
/// executable (`target/debug/sietch` in a checkout), else `anvil` on PATH.
pub(super) fn find_anvil() -> anyhow::Result<PathBuf> {
    if let Some(root) = std::env::var_os("SIETCH_ROOT")
        && let Some(p) = pinned_under(Path::new(&root))
    {
        return Ok(p);
    }
    if let Ok(cwd) = std::env::current_dir()
        && let Some(p) = cwd.ancestors().find_map(pinned_under)
    {
        return Ok(p);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(p) = exe.ancestors().skip(1).find_map(pinned_under)
    {
        return Ok(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("anvil"))
            .find(|p| p.is_file())
    });
    match on_path {
        Some(p) => Ok(p),
        None => bail!(
            "anvil not found (looked in $SIETCH_ROOT/{PINNED}, ./{PINNED} and the directories \
             above, above the sietch binary, and on PATH): run `bash scripts/setup.sh` to install \
             the pinned Foundry tools"
        ),
    }
}

/// Starts anvil on 127.0.0.1 with a port the OS picks. Dropping the instance kills it.
pub(super) fn start(anvil: &Path) -> anyhow::Result<AnvilInstance> {
    Anvil::at(anvil)
        .host("127.0.0.1")
        .try_spawn()
        .with_context(|| format!("starting {}", anvil.display()))
}

/// A provider that signs for `default` (deployments and calls with no `from`) and for every
/// key in `others`, with simple nonce management: a call the chain refuses must not leave a
/// nonce gap (see `sietch_contracts::send`).
pub(super) fn connect(
    default: &PrivateKeySigner,
    others: &[PrivateKeySigner],
    anvil: &AnvilInstance,
) -> DynProvider {
    let mut wallet = EthereumWallet::from(default.clone());
    for k in others {
        wallet.register_signer(k.clone());
    }
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(wallet)
        .connect_http(anvil.endpoint_url())
        .erased()
}
