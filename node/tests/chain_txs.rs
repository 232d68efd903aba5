//! The node's transactions against a hostile chain (`docs/transactions.md`): a real anvil with
//! the escrow, made hostile with its own RPC methods (automine off, a base fee spike, dropped
//! pools, another sender on the node's account) and, for its endpoint, a TCP proxy that dies
//! mid-request. Each test asserts what the node's money relies on: a call lands once, with the
//! nonce it was given, or fails with the escrow's reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use sietch_contracts::SietchEscrow::SietchEscrowErrors;
use sietch_contracts::{MockToken, send};
use sietch_node::chain::{Chain, ChainError};
use sietch_node::config::TxConfig;
use sietch_node::store::Store;
use sietch_testkit::devnet::{E18, EscrowChain, connect, escrow_chain};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Anvil with the token and the escrow, automining: the testkit's, with this file's helpers.
struct Env(EscrowChain);

impl std::ops::Deref for Env {
    type Target = EscrowChain;
    fn deref(&self) -> &EscrowChain {
        &self.0
    }
}

async fn env() -> Env {
    Env(escrow_chain().await.unwrap())
}

impl Env {
    async fn rpc<
        T: serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + Unpin + 'static,
    >(
        &self,
        method: &'static str,
        params: impl serde::Serialize + Clone + Send + Sync + Unpin + std::fmt::Debug,
    ) -> T {
        self.deployer
            .raw_request::<_, T>(method.into(), params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    async fn automine(&self, on: bool) {
        self.rpc::<serde_json::Value>("evm_setAutomine", (on,))
            .await;
    }

    async fn mine(&self) {
        self.rpc::<serde_json::Value>("evm_mine", ()).await;
    }

    /// A fresh account with gas and 1,000 tokens.
    async fn account(&self) -> PrivateKeySigner {
        let key = PrivateKeySigner::random();
        self.rpc::<()>("anvil_setBalance", (key.address(), U256::from(100 * E18)))
            .await;
        send(
            MockToken::new(self.token, &self.deployer).mint(key.address(), U256::from(1_000 * E18)),
        )
        .await
        .unwrap();
        key
    }

    async fn chain(
        &self,
        url: &str,
        key: &PrivateKeySigner,
        cfg: &TxConfig,
        store: Option<Arc<Store>>,
    ) -> Chain {
        Chain::connect_with(url, self.anvil.chain_id(), self.escrow, key, cfg, store)
            .await
            .unwrap()
    }

    async fn nonce(&self, who: Address) -> u64 {
        self.deployer.get_transaction_count(who).await.unwrap()
    }

    /// Whether a pool (or the chain) holds `hash`.
    async fn known(&self, hash: B256) -> bool {
        self.deployer
            .get_transaction_by_hash(hash)
            .await
            .unwrap()
            .is_some()
    }

    /// Waits until `chain` has a transaction pending and in the pool; that transaction.
    async fn in_pool(&self, chain: &Chain) -> sietch_node::chain::PendingTx {
        until("a transaction in the pool", async || {
            match chain.pending_transactions().first() {
                Some(t) => self.known(t.hashes[0]).await,
                None => false,
            }
        })
        .await;
        chain.pending_transactions()[0].clone()
    }

    async fn mined(&self, hash: B256) -> bool {
        self.deployer
            .get_transaction_receipt(hash)
            .await
            .unwrap()
            .is_some()
    }
}

/// Quick settings: replace after a second, look every 50 ms.
fn fast() -> TxConfig {
    TxConfig {
        replace_after_secs: 1,
        receipt_poll_ms: 50,
        rpc_timeout_secs: 2,
        rpc_retries: 2,
        rpc_backoff_ms: 50,
        ..TxConfig::default()
    }
}

/// Waits (briefly) until `f` holds.
async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..400 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

fn node_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&rand::random())
}

/// A base fee spike over the node's offer: the transactions sit (anvil even drops them from
/// its pool), then each nonce is replaced with higher fees and mined once; the stake happened
/// once, with the nonces it was given.
#[tokio::test(flavor = "multi_thread")]
async fn anvil_base_fee_spike_replaces_with_the_same_nonce() {
    let env = env().await;
    let key = env.account().await;
    let chain = env.chain(&env.anvil.endpoint(), &key, &fast(), None).await;
    chain.register(&node_key()).await.unwrap();
    let n = env.nonce(key.address()).await;
    let token = MockToken::new(env.token, &env.deployer);
    let before = token.balanceOf(key.address()).call().await.unwrap();

    env.automine(false).await;
    let c = chain.clone();
    let staking = tokio::spawn(async move { c.stake(100 * E18).await });
    let first = env.in_pool(&chain).await;
    assert_eq!(first.nonce, n);
    // The spike: twice the node's offer, block after block.
    let spike = first.max_fee * 2;
    let mut versions: std::collections::BTreeMap<u64, std::collections::BTreeSet<B256>> =
        Default::default();
    let mut stuck_seen = false;
    for _ in 0..200 {
        for t in chain.pending_transactions() {
            versions.entry(t.nonce).or_default().extend(t.hashes);
        }
        if staking.is_finished() {
            break;
        }
        env.rpc::<serde_json::Value>("anvil_setNextBlockBaseFeePerGas", (U256::from(spike),))
            .await;
        env.mine().await;
        if !stuck_seen {
            // The first offer is under the base fee: not mined.
            assert_eq!(
                env.nonce(key.address()).await,
                n,
                "mined under the base fee"
            );
            assert!(!env.mined(first.hashes[0]).await);
            stuck_seen = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    staking.await.unwrap().unwrap();

    assert_eq!(
        env.nonce(key.address()).await,
        n + 2,
        "approve and stake, nothing more"
    );
    assert!(
        versions.keys().all(|k| *k == n || *k == n + 1),
        "{versions:?}"
    );
    for (nonce, hashes) in &versions {
        let mut mined = Vec::new();
        for h in hashes {
            if env.mined(*h).await {
                mined.push(*h);
            }
        }
        assert_eq!(mined.len(), 1, "nonce {nonce}: exactly one version mined");
        let tx: serde_json::Value = env.rpc("eth_getTransactionByHash", (mined[0],)).await;
        assert_eq!(tx["nonce"], format!("{nonce:#x}"), "the nonce it was given");
    }
    assert!(versions[&n].len() >= 2, "the approval was replaced");
    assert!(!versions[&n].contains(&B256::ZERO));
    assert_eq!(chain.account(key.address()).await.unwrap().stake, 100 * E18);
    let after = token.balanceOf(key.address()).call().await.unwrap();
    assert_eq!(before - after, U256::from(100 * E18), "staked once");
    assert!(chain.pending_transactions().is_empty());
}

/// A TCP proxy in front of anvil that can be stopped (its port refuses connections, its open
/// connections die) and started again on the same port, and armed to die the moment it has
/// passed an `eth_sendRawTransaction` on (the transaction reaches the chain, the answer never
/// reaches the node).
struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    die_on_send: AtomicBool,
    deaths: AtomicUsize,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Arc::new(Self {
            addr: listener.local_addr().unwrap(),
            upstream,
            task: std::sync::Mutex::new(None),
            die_on_send: AtomicBool::new(false),
            deaths: AtomicUsize::new(0),
        });
        p.serve(listener);
        p
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(self: &Arc<Self>, listener: TcpListener) {
        let me = self.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                conns.spawn(me.clone().pipe(client));
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }

    async fn restart(self: &Arc<Self>) {
        self.stop();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    async fn pipe(self: Arc<Self>, client: TcpStream) {
        let Ok(up) = TcpStream::connect(self.upstream).await else {
            return;
        };
        let (mut cr, mut cw) = client.into_split();
        let (mut ur, mut uw) = up.into_split();
        let cut = Arc::new(AtomicBool::new(false));
        let armed = cut.clone();
        let me = self.clone();
        let to_chain = async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = cr.read(&mut buf).await {
                if n == 0 || uw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                let sending = buf[..n].windows(22).any(|w| w == b"eth_sendRawTransaction");
                if sending && me.die_on_send.load(Ordering::SeqCst) {
                    armed.store(true, Ordering::SeqCst);
                }
            }
        };
        let me = self.clone();
        let to_node = async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = ur.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if cut.load(Ordering::SeqCst) {
                    // The chain has the transaction; the node never hears so.
                    me.die_on_send.store(false, Ordering::SeqCst);
                    me.deaths.fetch_add(1, Ordering::SeqCst);
                    me.stop();
                    break;
                }
                if cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        };
        tokio::select! {
            _ = to_chain => {}
            _ = to_node => {}
        }
    }
}

/// The endpoint dies with the node's transaction in flight (it reached the chain, its answer
/// was lost): the node goes on through the second endpoint and the call lands once; then the
/// second dies and the first, restarted, carries the next call.
#[tokio::test(flavor = "multi_thread")]
async fn anvil_rpc_endpoint_killed_mid_transaction_fails_over() {
    let env = env().await;
    let upstream: SocketAddr = format!("127.0.0.1:{}", env.anvil.port()).parse().unwrap();
    let first = Proxy::start(upstream).await;
    let second = Proxy::start(upstream).await;
    let key = env.account().await;
    let cfg = TxConfig {
        fallback_rpc_urls: vec![second.url()],
        ..fast()
    };
    let chain = env.chain(&first.url(), &key, &cfg, None).await;
    let n = env.nonce(key.address()).await;

    first.die_on_send.store(true, Ordering::SeqCst);
    let nk = node_key();
    chain.register(&nk).await.unwrap();
    assert_eq!(
        first.deaths.load(Ordering::SeqCst),
        1,
        "the proxy died mid-send"
    );
    assert!(
        TcpStream::connect(first.addr).await.is_err(),
        "the first endpoint is down"
    );
    assert_eq!(env.nonce(key.address()).await, n + 1, "registered once");
    assert_eq!(
        chain.account(key.address()).await.unwrap().node_key,
        nk.verifying_key().to_bytes()
    );

    // The second dies too; the first comes back.
    first.restart().await;
    second.stop();
    chain.stake(100 * E18).await.unwrap();
    assert_eq!(
        env.nonce(key.address()).await,
        n + 3,
        "approve and stake once each"
    );
    assert_eq!(chain.account(key.address()).await.unwrap().stake, 100 * E18);
    second.restart().await;
    first.stop();
    assert_eq!(chain.account(key.address()).await.unwrap().stake, 100 * E18);
}

/// A node stops with its transaction pending, and the pool loses it meanwhile: the restarted
/// node finds it in its store, sends the very same transaction again (same hash, same nonce,
/// no second copy), sees it mined, and its next call follows it.
#[tokio::test(flavor = "multi_thread")]
async fn anvil_restarted_node_finds_its_pending_transaction() {
    let env = env().await;
    let key = env.account().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = TxConfig {
        replace_after_secs: 60,
        ..fast()
    };
    let n = env.nonce(key.address()).await;

    env.automine(false).await;
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let before = env
        .chain(&env.anvil.endpoint(), &key, &cfg, Some(store))
        .await;
    let nk = node_key();
    let c = before.clone();
    let task = tokio::spawn(async move { c.register(&nk).await });
    let sent = env.in_pool(&before).await;
    assert_eq!(sent.nonce, n);
    // The node stops; its pool forgets the transaction.
    task.abort();
    let _ = task.await;
    drop(before);
    env.rpc::<serde_json::Value>("anvil_dropAllTransactions", ())
        .await;
    assert!(
        env.deployer
            .get_transaction_by_hash(sent.hashes[0])
            .await
            .unwrap()
            .is_none()
    );

    let store = Arc::new(Store::open(dir.path()).unwrap());
    let after = env
        .chain(&env.anvil.endpoint(), &key, &cfg, Some(store))
        .await;
    assert_eq!(after.pending_transactions(), vec![sent.clone()]);
    until("the same transaction back in the pool", async || {
        env.deployer
            .get_transaction_by_hash(sent.hashes[0])
            .await
            .unwrap()
            .is_some()
    })
    .await;
    env.mine().await;
    until("the restarted node to see it mined", async || {
        after.pending_transactions().is_empty()
    })
    .await;
    assert!(env.mined(sent.hashes[0]).await);
    assert_eq!(env.nonce(key.address()).await, n + 1, "sent once");

    env.automine(true).await;
    after.stake(100 * E18).await.unwrap();
    assert_eq!(env.nonce(key.address()).await, n + 3);
    assert_eq!(after.account(key.address()).await.unwrap().stake, 100 * E18);
}

/// Another program sends from the node's account: transactions mined under the node's feet
/// move its nonce on, and one that takes the very nonce of the node's pending transaction
/// (out-bidding it in the pool) leaves that call unrun. The node notices, sends the call
/// again with a new nonce, and every transaction of both senders lands.
#[tokio::test(flavor = "multi_thread")]
async fn anvil_another_sender_on_the_account_loses_nothing() {
    let env = env().await;
    let key = env.account().await;
    let chain = env.chain(&env.anvil.endpoint(), &key, &fast(), None).await;
    let other = connect(&key, &env.anvil.endpoint()).unwrap();
    let stranger = Address::repeat_byte(0x5e);
    let transfer = |nonce: Option<u64>, fee: u128| {
        let mut t = TransactionRequest::default()
            .with_to(stranger)
            .with_value(U256::from(1))
            .with_max_fee_per_gas(fee)
            .with_max_priority_fee_per_gas(fee / 2);
        if let Some(n) = nonce {
            t = t.with_nonce(n);
        }
        t
    };

    chain.register(&node_key()).await.unwrap();
    // Two transfers by the other program, mined.
    for _ in 0..2 {
        other
            .send_transaction(transfer(None, 100_000_000_000))
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
    }
    chain.stake(100 * E18).await.unwrap();
    let m = env.nonce(key.address()).await;
    assert_eq!(m, 5, "register, two transfers, approve, stake");

    // The other program out-bids the node's pending transaction with the same nonce.
    env.automine(false).await;
    let nk = node_key();
    let c = chain.clone();
    let key2 = nk.clone();
    let registering = tokio::spawn(async move { c.register(&key2).await });
    let ours = env.in_pool(&chain).await;
    assert_eq!(ours.nonce, m);
    let theirs = *other
        .send_transaction(transfer(Some(m), ours.max_fee * 4))
        .await
        .unwrap()
        .tx_hash();
    env.mine().await;
    assert!(env.mined(theirs).await);
    assert!(!env.mined(ours.hashes[0]).await);
    for _ in 0..100 {
        if registering.is_finished() {
            break;
        }
        env.mine().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    registering.await.unwrap().unwrap();
    assert_eq!(
        env.nonce(key.address()).await,
        m + 2,
        "theirs, then ours again"
    );
    assert_eq!(
        chain.account(key.address()).await.unwrap().node_key,
        nk.verifying_key().to_bytes()
    );
    assert_eq!(
        env.deployer.get_balance(stranger).await.unwrap(),
        U256::from(3),
        "every transfer of the other program landed"
    );
    // And the node's next call after all that.
    env.automine(true).await;
    chain.stake(E18).await.unwrap();
    assert_eq!(env.nonce(key.address()).await, m + 4);
    assert_eq!(chain.account(key.address()).await.unwrap().stake, 101 * E18);
}

/// A call the escrow accepted when estimated but refused when mined (the provider closed the
/// channel first, in the same block, with a higher tip): the node reports the escrow's own
/// error, decoded, not a success.
#[tokio::test(flavor = "multi_thread")]
async fn anvil_mined_revert_is_reported_with_the_escrow_error() {
    let env = env().await;
    let provider_key = env.account().await;
    let buyer_key = env.account().await;
    let provider = env
        .chain(&env.anvil.endpoint(), &provider_key, &fast(), None)
        .await;
    let buyer = env
        .chain(&env.anvil.endpoint(), &buyer_key, &fast(), None)
        .await;
    provider.register(&node_key()).await.unwrap();
    provider.stake(100 * E18).await.unwrap();
    let channel = buyer
        .open_channel(provider_key.address(), 5 * E18)
        .await
        .unwrap();

    env.automine(false).await;
    let b = buyer.clone();
    let buyer_close = tokio::spawn(async move { b.start_close(channel).await });
    env.in_pool(&buyer).await;
    // The provider's own program closes first: a higher tip, and a gas limit of its own (an
    // estimate against the pending state would see the buyer's close and refuse).
    let provider_rpc = connect(&provider_key, &env.anvil.endpoint()).unwrap();
    let theirs = *sietch_contracts::SietchEscrow::new(env.escrow, &provider_rpc)
        .startClose(channel)
        .gas(200_000)
        .max_fee_per_gas(200_000_000_000)
        .max_priority_fee_per_gas(50_000_000_000)
        .send()
        .await
        .unwrap()
        .tx_hash();
    env.mine().await;
    assert!(env.mined(theirs).await);
    let err = buyer_close.await.unwrap().unwrap_err();
    match &err {
        ChainError::Escrow(e) => match e.reverted() {
            Some(SietchEscrowErrors::WrongChannelState(s)) => assert_eq!(s.channelId, channel),
            other => panic!("not the escrow's error: {other:?} ({e})"),
        },
        other => panic!("not a revert: {other}"),
    }
    assert!(err.to_string().contains("mined"), "{err}");
    assert_eq!(
        buyer.channel(channel).await.unwrap().state,
        2,
        "closing, by the provider"
    );
}

/// The base fee climbs over the fee cap: the node raises its offer up to the cap, then says
/// so (`FeeCapReached`) and keeps the transaction pending, sends nothing after it, and sees it
/// mined, with its nonce, once the base fee falls back under the offer.
#[tokio::test(flavor = "multi_thread")]
async fn anvil_fee_cap_reached_keeps_the_transaction_pending() {
    let env = env().await;
    let key = env.account().await;
    let cap = 4_000_000_000u64;
    let cfg = TxConfig {
        max_fee_per_gas_wei: cap,
        ..fast()
    };
    let chain = env.chain(&env.anvil.endpoint(), &key, &cfg, None).await;
    let n = env.nonce(key.address()).await;

    env.automine(false).await;
    let nk = node_key();
    let c = chain.clone();
    let registering = tokio::spawn(async move { c.register(&nk).await });
    let sent = env.in_pool(&chain).await;
    assert!(sent.max_fee < u128::from(cap));
    let spike = U256::from(cap) * U256::from(3);
    let mut result = None;
    for _ in 0..100 {
        if registering.is_finished() {
            result = Some(registering.await.unwrap());
            break;
        }
        env.rpc::<serde_json::Value>("anvil_setNextBlockBaseFeePerGas", (spike,))
            .await;
        env.mine().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match result {
        Some(Err(ChainError::FeeCapReached { nonce, max_fee, .. })) => {
            assert_eq!(nonce, n);
            assert_eq!(max_fee, u128::from(cap), "raised up to the cap, not beyond");
        }
        other => panic!("expected FeeCapReached, got {other:?}"),
    }
    let pending = chain.pending_transactions();
    assert_eq!(pending.len(), 1, "still pending");
    assert_eq!(pending[0].nonce, n);
    assert_eq!(env.nonce(key.address()).await, n);
    // Nothing is sent behind it while it is stuck.
    let behind = chain.register(&node_key()).await;
    assert!(
        matches!(behind, Err(ChainError::FeeCapReached { nonce, .. }) if nonce == n),
        "{behind:?}"
    );
    assert_eq!(chain.pending_transactions().len(), 1);

    // The base fee falls: it goes in, once.
    let mut settled = false;
    for _ in 0..100 {
        env.rpc::<serde_json::Value>(
            "anvil_setNextBlockBaseFeePerGas",
            (U256::from(1_000_000_000u64),),
        )
        .await;
        if chain.settle_pending().await.is_ok() && chain.pending_transactions().is_empty() {
            settled = true;
            break;
        }
        env.mine().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(settled, "mined once the base fee fell");
    assert_eq!(env.nonce(key.address()).await, n + 1);
    env.automine(true).await;
    chain.register(&node_key()).await.unwrap();
    assert_eq!(env.nonce(key.address()).await, n + 2);
}
