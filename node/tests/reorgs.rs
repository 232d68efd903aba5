//! Reorganizations as a hostile chain makes them, on a real anvil (`anvil_reorg` replaces
//! the last blocks with others that hold other transactions; the dropped ones are gone):
//! the watcher follows block hashes, hands events to the roles only `confirmations` deep,
//! retracts what a reorganization drops, and reports one past the depth loudly and
//! recovers (`docs/finality.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::{DynProvider, Provider as _};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use sietch_contracts::SietchEscrow::{self, SietchEscrowEvents};
use sietch_contracts::deploy;
use sietch_market::{PublicKey, registration};
use sietch_node::chain::finality::Follower;
use sietch_node::chain::{Chain, ChainEvent};
use sietch_node::events::{Events, NodeEvent};
use sietch_node::store::Store;
use sietch_testkit::devnet::{connect, escrow_config, find_anvil};

/// A chain of its own: anvil mining a block per transaction (and on `evm_mine`), the
/// token and the escrow deployed.
struct Fixture {
    anvil: AnvilInstance,
    deployer: DynProvider,
    escrow: Address,
}

async fn fixture() -> Fixture {
    let path = find_anvil().unwrap();
    let anvil =
        tokio::task::block_in_place(|| Anvil::at(&path).host("127.0.0.1").try_spawn().unwrap());
    let key: PrivateKeySigner = anvil.keys()[0].clone().into();
    let deployer = connect(&key, &anvil.endpoint()).unwrap();
    let dep = deploy::deploy_with_mock_token(deployer.clone(), escrow_config())
        .await
        .unwrap();
    Fixture {
        anvil,
        deployer,
        escrow: dep.escrow,
    }
}

impl Fixture {
    /// A dev account's key (anvil holds it unlocked too).
    fn key(&self, i: usize) -> PrivateKeySigner {
        self.anvil.keys()[i].clone().into()
    }

    async fn chain(&self, i: usize) -> Chain {
        Chain::connect(
            &self.anvil.endpoint(),
            self.anvil.chain_id(),
            self.escrow,
            &self.key(i),
        )
        .await
        .unwrap()
    }

    /// Registers dev account `i` with a node key of its own, in a block of its own.
    async fn register(&self, i: usize) {
        self.chain(i).await.register(&node_key(i)).await.unwrap();
    }

    /// Dev account `i`'s registration as a transaction for `anvil_reorg` to put in a block
    /// of the new branch.
    fn registration_tx(&self, i: usize) -> serde_json::Value {
        let from = self.key(i).address();
        let proof = registration::prove(&node_key(i), self.anvil.chain_id(), self.escrow, from);
        let call = SietchEscrow::registerCall {
            nodeKey: B256::from(PublicKey::of(&node_key(i)).0),
            proof: Bytes::from(proof.to_vec()),
        };
        serde_json::json!({
            "from": from,
            "to": self.escrow,
            "input": Bytes::from(call.abi_encode()),
            "gas": "0x200000",
        })
    }

    async fn head(&self) -> u64 {
        self.deployer.get_block_number().await.unwrap()
    }

    async fn mine(&self, blocks: u64) {
        for _ in 0..blocks {
            self.deployer
                .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
                .await
                .unwrap();
        }
    }

    /// Replaces the last `depth` blocks with as many new ones; `txs` go into the first.
    async fn reorg(&self, depth: u64, txs: Vec<serde_json::Value>) {
        let pairs: Vec<serde_json::Value> =
            txs.into_iter().map(|t| serde_json::json!([t, 0])).collect();
        self.deployer
            .raw_request::<_, serde_json::Value>("anvil_reorg".into(), (depth, pairs))
            .await
            .unwrap();
    }
}

fn node_key(i: usize) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[u8::try_from(i).unwrap() + 1; 32])
}

/// The accounts registered by `events`, in order.
fn registered(events: &[ChainEvent]) -> Vec<Address> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            SietchEscrowEvents::Registered(r) => Some(r.account),
            _ => None,
        })
        .collect()
}

/// A reorganization within the confirmation depth: the dropped block's event never reaches
/// the roles nor the account index, the new branch's does once deep enough, and the common
/// ancestor is the block under the dropped one.
#[tokio::test(flavor = "multi_thread")]
async fn anvil_a_reorg_within_the_depth_retracts_unconfirmed_events_and_delivers_the_new_branch() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let watcher = f.chain(9).await;
    let mut follower = Follower::new(watcher.clone(), store.clone(), 0, 2).unwrap();
    let (a, b, c) = (f.key(1).address(), f.key(2).address(), f.key(3).address());

    f.register(1).await;
    let step = follower.poll().await.unwrap();
    assert!(
        registered(&step.confirmed).is_empty(),
        "not deep enough yet"
    );
    assert!(watcher.known_account(&a).is_none(), "nor in the index");
    f.mine(2).await;
    let step = follower.poll().await.unwrap();
    assert_eq!(registered(&step.confirmed), vec![a], "two blocks deep");
    assert!(watcher.known_account(&a).is_some());
    let head = f.head().await;
    assert_eq!(follower.cursor(), Some(head - 2));
    assert_eq!(
        store.chain_cursor(f.anvil.chain_id()).unwrap(),
        Some(head - 2)
    );

    // B registers; the block is replaced by one where C registers instead.
    f.register(2).await;
    let dropped = f.head().await;
    let step = follower.poll().await.unwrap();
    assert!(step.reorg.is_none() && registered(&step.confirmed).is_empty());
    f.reorg(1, vec![f.registration_tx(3)]).await;
    let step = follower.poll().await.unwrap();
    let reorg = step.reorg.expect("the reorganization is seen");
    assert_eq!(reorg.ancestor, Some(dropped - 1), "the common ancestor");
    assert_eq!(reorg.old_tip, dropped);
    assert!(!reorg.deep, "within the depth");
    assert_eq!(
        registered(&reorg.retracted),
        vec![b],
        "B's event is retracted"
    );
    assert_eq!(reorg.resync_from, dropped);
    assert!(registered(&step.confirmed).is_empty());
    assert_eq!(
        follower.cursor(),
        Some(dropped - 2),
        "nothing delivered was dropped"
    );

    f.mine(2).await;
    let step = follower.poll().await.unwrap();
    assert_eq!(
        registered(&step.confirmed),
        vec![c],
        "the new branch's event"
    );
    assert!(
        watcher.known_account(&b).is_none(),
        "B never entered the index"
    );
    assert!(watcher.known_account(&c).is_some());
    // Nothing twice.
    f.mine(3).await;
    let step = follower.poll().await.unwrap();
    assert!(step.confirmed.is_empty() && step.reorg.is_none());
}

/// A reorganization past the depth, through the watcher as the node runs it: told on the
/// node's events as deep, the stored cursor moved back to the common ancestor, the account
/// index rebuilt without the dropped registration, the new branch's event delivered, and an
/// event the roles had before the ancestor not delivered again.
#[tokio::test(flavor = "multi_thread")]
async fn anvil_a_deep_reorg_is_reported_and_the_watcher_resyncs_from_the_ancestor() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let watcher = f.chain(9).await;
    let events = Events::new();
    let mut told = events.subscribe();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let task = tokio::spawn(watcher.clone().watch(
        store.clone(),
        0,
        Duration::from_millis(50),
        1,
        events.clone(),
        tx,
    ));
    let next = async |rx: &mut tokio::sync::mpsc::Receiver<ChainEvent>| loop {
        let e = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event within 10 s")
            .expect("the watcher runs");
        if let SietchEscrowEvents::Registered(r) = e.event {
            return (e.block, r.account);
        }
    };
    let (a, c, d) = (f.key(1).address(), f.key(3).address(), f.key(4).address());

    f.register(1).await;
    f.mine(1).await;
    assert_eq!(next(&mut rx).await.1, a);
    f.register(3).await;
    let c_block = f.head().await;
    f.mine(2).await;
    assert_eq!(next(&mut rx).await, (c_block, c), "C, one block deep");
    assert!(watcher.known_account(&c).is_some());

    // Three blocks replaced, C's among them: past the depth of 1. D registers instead.
    let head = f.head().await;
    assert_eq!(head, c_block + 2);
    f.reorg(3, vec![f.registration_tx(4)]).await;
    let reorg = loop {
        let e = tokio::time::timeout(Duration::from_secs(10), told.recv())
            .await
            .expect("told within 10 s")
            .unwrap();
        if let NodeEvent::Reorg { .. } = e {
            break e;
        }
    };
    let NodeEvent::Reorg {
        ancestor,
        dropped,
        retracted,
        deep,
        resync_from,
    } = reorg
    else {
        unreachable!()
    };
    assert!(deep, "past the depth");
    assert_eq!(ancestor, Some(c_block - 1));
    assert_eq!(dropped, 3);
    assert_eq!(retracted, 1, "C's registration");
    assert_eq!(resync_from, c_block);
    assert!(reorg.to_string().contains("DEEP"), "{reorg}");

    // Recovered: D comes once a block deep, A is not delivered again, C is gone.
    f.mine(1).await;
    assert_eq!(next(&mut rx).await, (c_block, d), "D, in the new branch");
    assert!(watcher.known_account(&c).is_none(), "the index lost C");
    assert!(watcher.known_account(&a).is_some(), "and kept A");
    assert!(watcher.known_account(&d).is_some());
    assert!(
        store.chain_cursor(f.anvil.chain_id()).unwrap() >= Some(c_block),
        "the cursor moves on from the ancestor"
    );
    f.mine(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(e) = rx.try_recv() {
        assert!(
            !matches!(e.event, SietchEscrowEvents::Registered(_)),
            "nothing twice: {e:?}"
        );
    }
    assert!(!task.is_finished(), "the watcher goes on");
    task.abort();
}

/// A reorganization deeper than every block hash the watcher keeps (its depth and 64): no
/// common ancestor can be found, so it is reported deep with none, the watcher reads again
/// from well before, hands out the new branch's event once and nothing it had handed out
/// before the reorganization's reach again.
#[tokio::test(flavor = "multi_thread")]
async fn anvil_a_reorg_deeper_than_the_hashes_kept_is_recovered_from_well_before() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let watcher = f.chain(9).await;
    let mut follower = Follower::new(watcher.clone(), store.clone(), 0, 1).unwrap();
    let (a, b, c) = (f.key(1).address(), f.key(2).address(), f.key(3).address());
    f.register(1).await;
    f.mine(10).await;
    let step = follower.poll().await.unwrap();
    assert_eq!(registered(&step.confirmed), vec![a]);
    f.register(2).await;
    f.mine(80).await;
    let step = follower.poll().await.unwrap();
    assert_eq!(registered(&step.confirmed), vec![b]);

    // 81 blocks replaced: B's registration among them, 65 hashes kept.
    f.reorg(81, vec![f.registration_tx(3)]).await;
    let step = follower.poll().await.unwrap();
    let reorg = step.reorg.expect("seen");
    assert!(reorg.deep);
    assert_eq!(reorg.ancestor, None, "older than every hash kept");
    let mut confirmed = step.confirmed;
    while confirmed.is_empty() {
        f.mine(1).await;
        confirmed = follower.poll().await.unwrap().confirmed;
    }
    let again = registered(&confirmed);
    assert!(again.contains(&c), "the new branch: {again:?}");
    assert!(!again.contains(&b), "the dropped event: {again:?}");
    assert_eq!(
        store.chain_cursor(f.anvil.chain_id()).unwrap(),
        follower.cursor(),
        "the stored cursor follows"
    );
    assert!(watcher.known_account(&a).is_some());
    assert!(watcher.known_account(&b).is_none(), "B left the index");
    assert!(watcher.known_account(&c).is_some());
}

/// A head below the newest block read, on the branch read (a lagging endpoint, or anvil's
/// `anvil_rollback`), is not taken for a reorganization; once a different block comes at
/// the height read, it is, and it is found within the depth.
#[tokio::test(flavor = "multi_thread")]
async fn anvil_a_head_behind_the_blocks_read_is_a_reorg_only_once_the_chain_differs() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let watcher = f.chain(9).await;
    let mut follower = Follower::new(watcher.clone(), store, 0, 2).unwrap();
    f.register(1).await;
    let registered_in = f.head().await;
    f.mine(1).await;
    let step = follower.poll().await.unwrap();
    assert!(step.confirmed.is_empty() && step.reorg.is_none());

    f.deployer
        .raw_request::<_, serde_json::Value>("anvil_rollback".into(), (1,))
        .await
        .unwrap();
    assert_eq!(f.head().await, registered_in);
    let step = follower.poll().await.unwrap();
    assert!(step.reorg.is_none(), "behind is not a reorganization");
    assert!(step.confirmed.is_empty());

    // A block that cannot be the one dropped (an empty one mined in the same second could).
    f.register(2).await;
    let step = follower.poll().await.unwrap();
    let reorg = step.reorg.expect("another block at the height read");
    assert_eq!(reorg.ancestor, Some(registered_in));
    assert!(!reorg.deep && reorg.retracted.is_empty());
    f.mine(1).await;
    let step = follower.poll().await.unwrap();
    assert_eq!(registered(&step.confirmed), vec![f.key(1).address()]);
}

// ---- whole markets ----

use sietch_market::{BlobRef, JobSpec, Limits, Requirements, U256, VerificationPolicy};
use sietch_testkit::devnet::{Devnet, DevnetConfig, E18};
use sietch_testkit::fnv;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A job of the FNV guest with up to `fuel` fuel: its ticket may take what that fuel costs
/// at the devnet's price, 1,000 base units per 10^9 fuel (what it really costs is a unit or
/// two); never re-run.
fn job(module: &[u8], stdin: &[u8], fuel: u64) -> JobSpec {
    JobSpec {
        module: BlobRef::of(module).hash,
        args: vec![],
        env: vec![],
        stdin: Some(BlobRef::of(stdin)),
        inputs: vec![],
        limits: Limits {
            fuel,
            memory_bytes: 1 << 20,
            wall_time_ms: 10_000,
            output_bytes: 1 << 16,
        },
        requirements: Requirements {
            min_cpu_cores: 1,
            ..Requirements::default()
        },
        verification: VerificationPolicy {
            sampling_ppm: 1,
            ..VerificationPolicy::default()
        },
        // Small enough that one in a million sampled is covered by the stake.
        price_cap: 1_000_000_000,
        deadline: now() + 600,
    }
}

/// The next event of `name` that `pick` takes, within `secs`.
async fn wait_for<T>(
    net: &mut Devnet,
    name: &str,
    secs: u64,
    mut pick: impl FnMut(&NodeEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, net.events.recv()).await {
            Ok(Some((n, e))) => {
                eprintln!("{n}: {e}");
                if n == name
                    && let Some(t) = pick(&e)
                {
                    return t;
                }
            }
            _ => panic!("no such event of {name} within {secs} s"),
        }
    }
}

/// Tokens `who` holds, with what the escrow credits it.
async fn wealth(net: &Devnet, chain: &Chain, who: Address) -> U256 {
    net.balance(who).await.unwrap() + U256::from(chain.credited(who).await.unwrap())
}

/// What the provider risks on an unconfirmed deposit in the channel-open test: a ticket of
/// [`FUEL`] (50 base units) and a half.
const RISK: u128 = 75;

/// The fuel limit of the tests' jobs: their tickets take up to 50 base units.
const FUEL: u64 = 50_000_000;

/// A buyer's channel open is reorganized out after the provider served on it: the
/// provider served only within `unconfirmed_risk` (a ticket whose range ends past it is
/// refused as "not deep enough yet"), and once the open is gone nobody's money moved: the
/// buyer holds what it held before, the provider gained nothing, and the escrow holds no
/// deposit. Both nodes go on (the provider's reorg was within its depth, the buyer's past).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_channel_open_reorganized_out_after_jobs_costs_the_provider_at_most_its_risk() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::new(1, dir.path());
    cfg.tweak = |name, c| {
        if name == "provider-0" {
            c.finality.confirmations = 6;
            c.finality.unconfirmed_risk = RISK;
        }
    };
    let mut net = Devnet::start(cfg).await.unwrap();
    let chain = net.buyer.chain.clone().unwrap();
    let (buyer, provider) = (net.buyer.evm_address, net.providers[0].evm_address);
    let module = fnv::hash_guest(0);
    let input = b"served on an unconfirmed deposit".to_vec();
    for b in [&module, &input] {
        net.buyer.store.blobs().put(b).unwrap();
        net.providers[0].store.blobs().put(b).unwrap();
    }
    let buyer_before = wealth(&net, &chain, buyer).await;
    let provider_before = wealth(&net, &chain, provider).await;
    let escrow_before = net.balance(net.escrow).await.unwrap();

    // Served at once on a fresh channel: its ticket's range ends within the risk.
    let done = net
        .buyer
        .buyer
        .submit(job(&module, &input, FUEL))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&done.result.stdout),
        fnv::hex(&input)
    );
    let channels = net.buyer.buyer.channels();
    assert_eq!(channels.len(), 1);
    let channel = channels[0].0;
    let logs = escrow_logs::<SietchEscrow::ChannelOpened>(&net, &chain).await;
    let opened_in = logs[0].block_number.unwrap();

    // A ticket that could take more than the risk, before the deposit is deep: refused.
    let buyer_node = net.buyer.buyer.clone();
    let (m, i) = (module.clone(), input.clone());
    let greedy = tokio::spawn(async move { buyer_node.submit(job(&m, &i, 2 * FUEL)).await });
    // Both: the provider's refusal, and the buyer's word that the open is a block deep
    // (confirmed to it: the reorganization below is past its depth).
    let (mut refusal, mut seen_open) = (None, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while refusal.is_none() || !seen_open {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Ok(Some((name, e))) = tokio::time::timeout(left, net.events.recv()).await else {
            panic!("refused: {refusal:?}, open seen by the buyer: {seen_open}");
        };
        match (name.as_str(), &e) {
            ("provider-0", NodeEvent::Refused { reason, .. }) => refusal = Some(reason.clone()),
            ("buyer", NodeEvent::Escrow { name, .. }) if name == "ChannelOpened" => {
                seen_open = true;
            }
            _ => {}
        }
    }
    let refusal = refusal.unwrap_or_default();
    assert!(refusal.contains("deep"), "{refusal}");
    greedy.abort();
    let head = f_head(&net).await;
    assert!(
        head < opened_in + 6,
        "the open at {opened_in} is already 6 deep at {head}: the machine is too slow"
    );

    // The provider holds a voucher on a deposit that is about to vanish: within the risk.
    let held = net.providers[0].store.voucher(&channel).unwrap();
    let served = held.map_or(U256::ZERO, |v| v.message.cumulative_amount);
    assert!(served <= U256::from(RISK), "served {served}");

    // Everything from the open on is replaced by empty blocks.
    let depth = head - opened_in + 1;
    reorg_net(&net, depth).await;
    let deep = wait_for(&mut net, "buyer", 20, |e| match e {
        NodeEvent::Reorg { deep, .. } => Some(*deep),
        _ => None,
    })
    .await;
    assert!(deep, "past the buyer's depth of 1");
    assert_eq!(chain.channel(channel).await.unwrap().state, 0, "no channel");
    // Money conserved: the deposit never left the buyer; the provider was paid nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(wealth(&net, &chain, buyer).await, buyer_before);
    assert_eq!(wealth(&net, &chain, provider).await, provider_before);
    assert_eq!(net.balance(net.escrow).await.unwrap(), escrow_before);

    // The buyer no longer lists the vanished channel (its deposit never left the wallet),
    // and its next job to the provider goes on a channel that is on chain: one with the same
    // id (ids count the buyer's opens to the provider), whose line goes on from the voucher
    // the provider holds for the job it served.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while net.buyer.buyer.channels().iter().any(|c| c.0 == channel) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the buyer still lists channel {channel}: {:?}",
            net.buyer.buyer.channels()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let again = net
        .buyer
        .buyer
        .submit(job(&module, &input, FUEL))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&again.result.stdout),
        fnv::hex(&input)
    );
    let now = net.buyer.buyer.channels();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        chain.channel(now[0].0).await.unwrap().state,
        1,
        "open on chain"
    );
    assert!(now[0].2 > served, "the line went on from {served}: {now:?}");
    net.shutdown().await;
}

/// A buyer's top-up is reorganized out for good (its transaction is not sent again): the
/// buyer's lane comes down to the deposit the chain holds, says so, and no ticket counts on
/// the money that never left its wallet; the next job goes on the same channel, topped up
/// again, and money is conserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_top_up_reorganized_out_brings_the_buyers_lane_down_to_the_chains_deposit() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Devnet::start(DevnetConfig::new(1, dir.path()))
        .await
        .unwrap();
    let chain = net.buyer.chain.clone().unwrap();
    let (buyer, provider) = (net.buyer.evm_address, net.providers[0].evm_address);
    let buyer_before = wealth(&net, &chain, buyer).await;
    let escrow_before = net.balance(net.escrow).await.unwrap();
    let channel = net
        .buyer
        .buyer
        .fund(provider, U256::from(1_000u64))
        .await
        .unwrap();
    // What the open put in (the node's channel deposit, with what was asked).
    let first = U256::from(chain.channel(channel).await.unwrap().deposit);
    // Two blocks on, past the buyer's depth of 1: the top-up.
    let funded_at = f_head(&net).await;
    while f_head(&net).await < funded_at + 2 {
        net.deployer
            .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
            .await
            .unwrap();
    }
    let again = net.buyer.buyer.fund(provider, U256::from(500u64)).await;
    assert_eq!(again.unwrap(), channel, "topped up, not a new channel");
    let listed = |net: &Devnet| -> Option<U256> {
        net.buyer
            .buyer
            .channels()
            .iter()
            .find(|c| c.0 == channel)
            .map(|c| c.3)
    };
    assert_eq!(listed(&net), Some(first + U256::from(500u64)));
    let logs = escrow_logs::<SietchEscrow::ChannelToppedUp>(&net, &chain).await;
    let topped_in = logs[0].block_number.unwrap();

    // The top-up's block and those after it are replaced by empty ones.
    let depth = f_head(&net).await - topped_in + 1;
    reorg_net(&net, depth).await;
    assert_eq!(
        U256::from(chain.channel(channel).await.unwrap().deposit),
        first
    );
    wait_for(&mut net, "buyer", 20, |e| match e {
        NodeEvent::Reorg { .. } => Some(()),
        _ => None,
    })
    .await;
    let said = wait_for(&mut net, "buyer", 20, |e| match e {
        NodeEvent::Warning { message } if message.contains("top-up") => Some(message.clone()),
        _ => None,
    })
    .await;
    assert!(said.contains(&channel.to_string()), "{said}");
    assert_eq!(
        listed(&net),
        Some(first),
        "the lane is back to the chain's deposit"
    );
    assert!(f_head(&net).await >= topped_in, "the chain went on");
    // Nothing left the buyer but the first deposit, which the escrow holds.
    assert_eq!(wealth(&net, &chain, buyer).await, buyer_before - first);
    assert_eq!(
        net.balance(net.escrow).await.unwrap(),
        escrow_before + first
    );

    // Funding again tops up the same channel; lane and chain agree.
    net.buyer
        .buyer
        .fund(provider, U256::from(500u64))
        .await
        .unwrap();
    let on_chain = U256::from(chain.channel(channel).await.unwrap().deposit);
    assert_eq!(on_chain, first + U256::from(500u64));
    assert_eq!(listed(&net), Some(on_chain));
    assert_eq!(
        wealth(&net, &chain, buyer).await,
        buyer_before - on_chain,
        "each token that left the buyer is in its channel"
    );
    net.shutdown().await;
}

async fn f_head(net: &Devnet) -> u64 {
    net.deployer.get_block_number().await.unwrap()
}

/// The escrow's `E` events so far, oldest first.
async fn escrow_logs<E: alloy::sol_types::SolEvent>(
    net: &Devnet,
    chain: &Chain,
) -> Vec<alloy::rpc::types::Log> {
    let filter = alloy::rpc::types::Filter::new()
        .from_block(0)
        .address(net.escrow)
        .event_signature(E::SIGNATURE_HASH);
    chain.provider().get_logs(&filter).await.unwrap()
}

/// Replaces the devnet's last `depth` blocks with empty ones.
async fn reorg_net(net: &Devnet, depth: u64) {
    net.deployer
        .raw_request::<_, serde_json::Value>(
            "anvil_reorg".into(),
            (depth, Vec::<serde_json::Value>::new()),
        )
        .await
        .unwrap();
}

/// The provider's claim of its vouchers is reorganized out after it was two blocks deep
/// (past the devnet's depth of 1): the provider is told, claims again from what the chain
/// now says it is owed, and in the end the channel paid exactly the buyer's last voucher,
/// once, and the provider gained exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_voucher_claim_reorganized_out_is_claimed_again_and_paid_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Devnet::start(DevnetConfig::new(1, dir.path()))
        .await
        .unwrap();
    let chain = net.buyer.chain.clone().unwrap();
    let provider = net.providers[0].evm_address;
    let module = fnv::hash_guest(0);
    let input = b"claimed twice, paid once".to_vec();
    for b in [&module, &input] {
        net.buyer.store.blobs().put(b).unwrap();
        net.providers[0].store.blobs().put(b).unwrap();
    }
    let provider_before = wealth(&net, &chain, provider).await;
    for _ in 0..2 {
        net.buyer
            .buyer
            .submit(job(&module, &input, FUEL))
            .await
            .unwrap();
    }
    let channel = net.buyer.buyer.channels()[0].0;
    let owed = net.buyer.buyer.channels()[0].2;
    // The claim that pays the last voucher.
    let tx = wait_for(&mut net, "provider-0", 40, |e| match e {
        NodeEvent::Claimed { tx, .. } => Some(*tx),
        _ => None,
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while U256::from(chain.channel(channel).await.unwrap().paid) != owed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never claimed in full"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let receipt = chain
        .provider()
        .get_transaction_receipt(tx)
        .await
        .unwrap()
        .unwrap();
    let claimed_in = receipt.block_number.unwrap();
    while f_head(&net).await < claimed_in + 2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let depth = f_head(&net).await - claimed_in + 1;
    reorg_net(&net, depth).await;
    let paid_after_reorg = U256::from(chain.channel(channel).await.unwrap().paid);
    assert!(paid_after_reorg < owed, "the claim is gone");
    let deep = wait_for(&mut net, "provider-0", 20, |e| match e {
        NodeEvent::Reorg { deep, .. } => Some(*deep),
        _ => None,
    })
    .await;
    assert!(deep, "two blocks deep, past the depth of 1");
    // Claimed again (at once after a deep reorganization), and paid once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while U256::from(chain.channel(channel).await.unwrap().paid) != owed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the claim was not made again within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let gained = wealth(&net, &chain, provider).await - provider_before;
        if gained == owed {
            break;
        }
        assert!(
            gained < owed,
            "paid more than the vouchers: {gained} > {owed}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "gained {gained} of {owed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    net.shutdown().await;
}

/// Writes "ok" to stdout.
const OK: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "ok")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"#;

/// A buyer that never pays: the provider claims the job's ticket; the claim is reorganized
/// out (before the roles saw it: within the depth). The provider sees the ticket gone from the chain and claims it again
/// (`TicketStep::Reclaim`); once the challenge window passes, the ticket settles once: the
/// provider gains exactly its amount, and exactly that leaves the escrow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_ticket_claim_reorganized_out_is_claimed_again_and_settles_once() {
    use sietch_contracts::{MockToken, send};
    use sietch_market::{Ticket, TypedData as _, job_id};
    use sietch_node::net::{JobReply, JobRequest};

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::new(1, dir.path());
    cfg.tweak = |name, c| {
        if name == "provider-0" {
            c.voucher_timeout_secs = 2;
        }
    };
    let mut net = Devnet::start(cfg).await.unwrap();
    let provider = net.providers[0].evm_address;
    let chain = net.buyer.chain.clone().unwrap();

    // An account of its own with a channel to the provider, asking through the buyer's node.
    let key = PrivateKeySigner::random();
    net.deployer
        .raw_request::<_, ()>(
            "anvil_setBalance".into(),
            (key.address(), alloy::primitives::U256::from(E18)),
        )
        .await
        .unwrap();
    send(MockToken::new(net.token, &net.deployer).mint(key.address(), U256::from(100 * E18)))
        .await
        .unwrap();
    let own = Chain::connect(
        &net.anvil.endpoint(),
        net.anvil.chain_id(),
        net.escrow,
        &key,
    )
    .await
    .unwrap();
    let channel = own.open_channel(provider, 10 * E18).await.unwrap();
    let module = wat::parse_str(OK).unwrap();
    net.buyer.store.blobs().put(&module).unwrap();
    let mut spec = job(&module, b"", 1_000_000);
    spec.stdin = None;
    let t = Ticket {
        job_id: job_id(key.address(), 1, spec.hash()),
        spec_hash: spec.hash(),
        channel_id: channel,
        cumulative_before: U256::ZERO,
        max_amount: U256::from(1_000u64),
        deadline: now() + 600,
        check_commit: B256::repeat_byte(7),
        per_gfuel: sietch_node::config::NodeConfig::default().price_per_gfuel,
        per_gpu_second: 0,
    };
    let ticket_id = sietch_market::ticket_id(&channel, &t.job_id);
    let request = JobRequest {
        spec: spec.clone(),
        ticket_signature: t.sign(&own.domain(), &key).unwrap(),
        ticket: t,
        paying: None,
    };
    let reply = net
        .buyer
        .net
        .request_job(net.providers[0].net.peer_id(), request);
    let reply = tokio::time::timeout(Duration::from_secs(30), reply)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(reply, JobReply::Accepted { .. } | JobReply::Done(_)),
        "{reply:?}"
    );
    let provider_before = wealth(&net, &chain, provider).await;
    // Tokens only move between the escrow and the provider from here on.
    let held_before = net.balance(net.escrow).await.unwrap() + net.balance(provider).await.unwrap();

    // Never paid: claimed.
    wait_for(&mut net, "provider-0", 30, |e| match e {
        NodeEvent::TicketClaimed { ticket, .. } => (*ticket == ticket_id).then_some(()),
        _ => None,
    })
    .await;
    assert_eq!(chain.ticket(ticket_id).await.unwrap().state, 1, "claimed");
    let logs = escrow_logs::<SietchEscrow::TicketClaimed>(&net, &chain).await;
    let claimed_in = logs.last().unwrap().block_number.unwrap();
    while f_head(&net).await < claimed_in + 1 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let depth = f_head(&net).await - claimed_in + 1;
    reorg_net(&net, depth).await;
    assert_eq!(
        chain.ticket(ticket_id).await.unwrap().state,
        0,
        "the claim is gone"
    );

    // Claimed again from what the chain says.
    wait_for(&mut net, "provider-0", 30, |e| match e {
        NodeEvent::TicketClaimed { ticket, .. } => (*ticket == ticket_id).then_some(()),
        _ => None,
    })
    .await;
    assert_eq!(
        chain.ticket(ticket_id).await.unwrap().state,
        1,
        "claimed again"
    );

    // Past the challenge window: finalized, and paid once.
    net.advance(61).await.unwrap();
    wait_for(&mut net, "provider-0", 60, |e| match e {
        NodeEvent::TicketSettled { ticket, .. } => (*ticket == ticket_id).then_some(()),
        _ => None,
    })
    .await;
    let amount = U256::from(chain.ticket(ticket_id).await.unwrap().amount);
    assert!(amount > U256::ZERO);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let gained = wealth(&net, &chain, provider).await - provider_before;
        if gained == amount {
            break;
        }
        assert!(
            gained < amount,
            "paid more than the ticket: {gained} > {amount}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "gained {gained} of {amount}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        net.balance(net.escrow).await.unwrap() + net.balance(provider).await.unwrap(),
        held_before,
        "no token made or lost between the escrow and the provider"
    );
    net.shutdown().await;
}

/// A cheating provider's ticket is disputed; a verifier's vote is reorganized out after the
/// buyer saw it (past its depth). The buyer asks the drawn verifiers again, they vote again
/// (a verifier forgets its votes on a reorganization), and the dispute settles once: the
/// cheater slashed once, and the buyer's money adds up to the base unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_verdict_reorganized_out_is_cast_again_and_the_dispute_settles_once() {
    use sietch_node::events::TicketOutcome;

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::new(5, dir.path());
    // provider-0 answers every job wrongly, and is the cheapest, so it is picked first.
    cfg.cheats = vec![1_000_000];
    cfg.tweak = |name, c| {
        c.price_per_gfuel = if name == "provider-0" { 10 } else { 20 };
    };
    let mut net = Devnet::start(cfg).await.unwrap();
    let cheater = net.providers[0].evm_address;
    let buyer = net.buyer.evm_address;
    let module = fnv::hash_guest(0);
    let input = b"is this computed honestly, even across a reorg?".to_vec();
    net.buyer.store.blobs().put(&module).unwrap();
    net.buyer.store.blobs().put(&input).unwrap();
    let chain = net.buyer.chain.clone().unwrap();
    let buyer_before = net.balance(buyer).await.unwrap();
    let mut spec = job(&module, &input, FUEL);
    spec.verification.sampling_ppm = 1_000_000;
    spec.price_cap = E18 / 10;
    let done = net.buyer.buyer.submit(spec).await.unwrap();
    assert_eq!(done.check, Some(sietch_verifier::Decision::ProviderWrong));

    // The first vote, once the buyer has it a block deep.
    wait_for(&mut net, "buyer", 120, |e| match e {
        NodeEvent::Escrow { name, .. } => (name == "VerdictSubmitted").then_some(()),
        _ => None,
    })
    .await;
    let logs = escrow_logs::<SietchEscrow::VerdictSubmitted>(&net, &chain).await;
    let voted_in = logs[0].block_number.unwrap();
    let depth = f_head(&net).await - voted_in + 1;
    reorg_net(&net, depth).await;
    let ticket = logs[0].topics()[1];
    let rec = chain.ticket(ticket).await.unwrap();
    assert_eq!(rec.votedMask, 0, "every vote is gone");
    assert_eq!(rec.state, sietch_node::chain::TICKET_DRAWN);

    let outcome = wait_for(&mut net, "buyer", 90, |e| match e {
        NodeEvent::TicketSettled { outcome, .. } => Some(*outcome),
        _ => None,
    })
    .await;
    assert_eq!(outcome, TicketOutcome::ProviderWrong);
    assert_eq!(chain.account(cheater).await.unwrap().stake, 0, "slashed");
    let head = f_head(&net).await;
    let slashes: Vec<U256> = chain
        .events(0, head)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| match &e.event {
            SietchEscrowEvents::Slashed(s) if s.provider == cheater => Some(s.compensation),
            _ => None,
        })
        .collect();
    assert_eq!(slashes.len(), 1, "slashed once");
    let withdrawn_by = tokio::time::Instant::now() + Duration::from_secs(60);
    while chain.credited(buyer).await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < withdrawn_by,
            "never withdrawn"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut deposits = U256::ZERO;
    for (id, ..) in net.buyer.buyer.channels() {
        deposits += U256::from(chain.channel(id).await.unwrap().deposit);
    }
    assert_eq!(
        net.balance(buyer).await.unwrap() + deposits,
        buyer_before + slashes[0],
        "the buyer's money adds up"
    );
    net.shutdown().await;
}
