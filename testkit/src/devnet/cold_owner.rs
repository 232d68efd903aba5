//! A devnet provider that earns for a cold owner (`docs/keys.md`, "A cold owner";
//! `sietch devnet --cold-owner`): the owner is an anvil account of its own whose key only the
//! devnet's set-up uses, as a person would from a cold wallet (it names the node's key its
//! operator, registers the node's ed25519 key with that key's proof, approves and stakes);
//! the node holds only the operator's ("hot") key, in an encrypted keystore unlocked from a
//! password file in the devnet's directory, and its config names the owner.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use sietch_contracts::{MockToken, SietchEscrow, send};
use sietch_market::PublicKey;
use sietch_node::config::{KeysConfig, NodeConfig};
use sietch_node::service::{EvmKeySetup, Identity, InitOptions, init_with};
use sietch_node::store::Store;

/// Who a cold owner's provider earns for, and where its operator's key is.
#[derive(Debug, Clone)]
pub struct ColdOwner {
    /// The owner: its account stakes and is paid; its key stayed with the set-up.
    pub owner: Address,
    /// The operator: the node's EVM key, which signs and claims for the owner and pays gas.
    pub operator: Address,
    /// The node's encrypted keystore, which holds the operator's key.
    pub keystore: PathBuf,
    /// The file the node reads the keystore's password from (readable by its user only).
    pub password_file: PathBuf,
}

/// Where the devnet's chain is, for the owner's transactions.
pub(super) struct OwnerChain<'a> {
    /// Anvil's first account, which funds.
    pub deployer: &'a DynProvider,
    /// Anvil's URL.
    pub endpoint: String,
    /// The chain's id.
    pub chain_id: u64,
    /// The escrow.
    pub escrow: Address,
    /// The token.
    pub token: Address,
}

/// Makes the node's data directory `dir` with a new operator key in an encrypted keystore,
/// its password in a new file `password_file` (a random one, readable by its user only).
pub(super) fn init_operator(dir: &Path, password_file: &Path) -> anyhow::Result<Identity> {
    let password = alloy::primitives::hex::encode(rand::random::<[u8; 24]>());
    write_private(password_file, &format!("{password}\n"))?;
    let opts = InitOptions {
        force: false,
        evm: EvmKeySetup::NewKeystore,
        keys: keys_config(password_file),
    };
    init_with(dir, &opts).with_context(|| format!("making {} for a cold owner", dir.display()))
}

fn keys_config(password_file: &Path) -> KeysConfig {
    KeysConfig {
        password_file: Some(password_file.to_owned()),
        ..KeysConfig::default()
    }
}

/// The cold owner's side, before the node at `dir` (made by [`init_operator`], its operator
/// `operator`) starts: a new owner account with gas and `funds`, which names `operator` its
/// operator, registers the node's ed25519 key (the proof signed by the node's key, binding it
/// to the owner) and stakes `c.stake`; then `c` names the owner and the password file. The
/// owner's key is dropped here: nothing else ever holds it.
pub(super) async fn stake_for(
    chain: &OwnerChain<'_>,
    dir: &Path,
    operator: Address,
    password_file: &Path,
    funds: U256,
    c: &mut NodeConfig,
) -> anyhow::Result<ColdOwner> {
    use alloy::providers::Provider;
    let node_key = {
        let store = Store::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        store
            .node_keys()?
            .context("the cold owner's node has no keys")?
            .ed25519
    };
    let owner_key = PrivateKeySigner::random();
    let owner = owner_key.address();
    chain
        .deployer
        .raw_request::<_, ()>(
            "anvil_setBalance".into(),
            (owner, U256::from(1_000u128 * super::E18)),
        )
        .await
        .context("funding the cold owner with ETH")?;
    send(MockToken::new(chain.token, chain.deployer).mint(owner, funds))
        .await
        .context("minting the cold owner's tokens")?;
    let wallet = super::connect(&owner_key, &chain.endpoint)?;
    let escrow = SietchEscrow::new(chain.escrow, &wallet);
    send(escrow.setOperator(operator))
        .await
        .context("the owner names the node's key its operator")?;
    let proof = sietch_market::registration::prove(&node_key, chain.chain_id, chain.escrow, owner);
    send(escrow.register(
        B256::from(PublicKey::of(&node_key).0),
        Bytes::copy_from_slice(&proof),
    ))
    .await
    .context("the owner registers the node's key")?;
    let stake = U256::from(c.stake);
    if !stake.is_zero() {
        send(MockToken::new(chain.token, &wallet).approve(chain.escrow, stake))
            .await
            .context("the owner approves its stake")?;
        send(escrow.stake(stake))
            .await
            .context("the owner stakes")?;
    }
    c.chain.owner = Some(owner.to_string());
    c.keys = keys_config(password_file);
    Ok(ColdOwner {
        owner,
        operator,
        keystore: c.keys.keystore_path(dir),
        password_file: password_file.to_owned(),
    })
}

/// Writes `text` to a new file at `path`, readable and writable by its user only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
