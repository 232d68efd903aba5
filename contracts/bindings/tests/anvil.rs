//! Integration tests against a real anvil started by each test: deploy, register, stake, open
//! channels, sign vouchers in Rust, claim, batch claim, close, and the dispute path with time
//! travel. Anvil comes from `scripts/setup.sh` (`tools/bin/anvil`), else from PATH.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;

use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolEvent};

use sietch_contracts::SietchEscrow::{
    self, ChannelOpened, Config, ResultCommitment, SietchEscrowErrors, SietchEscrowInstance,
    Ticket, TicketClaimed, TicketSettled, Voucher,
};
use sietch_contracts::{EscrowError, MockToken, deploy, eip712, send};

const CLOSE_DELAY: u64 = 3600;
const CHALLENGE: u64 = 600;
const VERDICT: u64 = 1200;
const E18: u128 = 1_000_000_000_000_000_000;

fn e18(n: u128) -> U256 {
    U256::from(n * E18)
}

/// The anvil binary: `tools/bin/anvil` from the set-up script, else `anvil` on PATH.
fn anvil_binary() -> PathBuf {
    let pinned = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/bin/anvil");
    if pinned.exists() {
        return pinned;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("anvil"))
            .find(|p| p.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "anvil not found at {} nor on PATH: run `bash scripts/setup.sh` to install the pinned Foundry tools",
            pinned.display()
        )
    })
}

/// A provider with simple nonce management: a refused call must not leave a nonce gap (see `send`).
fn connect(wallet: EthereumWallet, url: alloy::transports::http::reqwest::Url) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(wallet)
        .connect_http(url)
        .erased()
}

fn config() -> Config {
    Config {
        closeDelay: CLOSE_DELAY,
        challengeWindow: CHALLENGE,
        verdictWindow: VERDICT,
        unstakeDelay: 7 * 24 * 3600,
        disputeBond: 30 * E18,
        verifierFee: 5 * E18,
        minStake: 100 * E18,
        minDeposit: E18,
        epochBlocks: EPOCH_BLOCKS,
    }
}

/// Blocks per stake epoch (anvil mines a block per transaction here).
const EPOCH_BLOCKS: u64 = 4;

/// A running anvil with the escrow deployed and the actors funded: account 0 deploys, 1 is the
/// buyer, 2 the provider, 3..=7 verifiers (all registered and staked but the buyer).
struct Chain {
    _anvil: AnvilInstance,
    provider: DynProvider,
    escrow: SietchEscrowInstance<DynProvider>,
    token: MockToken::MockTokenInstance<DynProvider>,
    domain: Eip712Domain,
    keys: Vec<PrivateKeySigner>,
}

impl Chain {
    async fn start() -> Self {
        let anvil = Anvil::at(anvil_binary()).try_spawn().expect("anvil starts");
        let keys: Vec<PrivateKeySigner> = anvil.keys().iter().map(|k| k.clone().into()).collect();
        let mut wallet = EthereumWallet::from(keys[0].clone());
        for k in &keys[1..] {
            wallet.register_signer(k.clone());
        }
        let provider = connect(wallet, anvil.endpoint_url());
        let dep = deploy::deploy_with_mock_token(provider.clone(), config())
            .await
            .unwrap();
        let escrow = SietchEscrow::new(dep.escrow, provider.clone());
        let token = MockToken::new(dep.token, provider.clone());
        let domain = eip712::domain(anvil.chain_id(), dep.escrow);
        let chain = Self {
            _anvil: anvil,
            provider,
            escrow,
            token,
            domain,
            keys,
        };
        // The buyer holds 10,000; providers and verifiers hold exactly their stake, so after
        // staking their token balance is what the escrow paid them.
        chain.fund(1, e18(10_000)).await;
        for i in 2..=7 {
            chain.fund(i, e18(1_000)).await;
            chain.register_and_stake(i, e18(1_000)).await;
        }
        chain
    }

    fn addr(&self, i: usize) -> Address {
        self.keys[i].address()
    }

    fn buyer(&self) -> Address {
        self.addr(1)
    }

    fn provider_addr(&self) -> Address {
        self.addr(2)
    }

    async fn fund(&self, i: usize, amount: U256) {
        send(self.token.mint(self.addr(i), amount)).await.unwrap();
        send(
            self.token
                .approve(*self.escrow.address(), U256::MAX)
                .from(self.addr(i)),
        )
        .await
        .unwrap();
    }

    async fn register_and_stake(&self, i: usize, amount: U256) {
        let key = keccak256(format!("ed25519 key {i}"));
        // The escrow checks only the proof's length; nodes verify it.
        let proof = Bytes::from(vec![0u8; 64]);
        send(self.escrow.register(key, proof).from(self.addr(i)))
            .await
            .unwrap();
        send(self.escrow.stake(amount).from(self.addr(i)))
            .await
            .unwrap();
    }

    async fn balance(&self, who: Address) -> U256 {
        self.token.balanceOf(who).call().await.unwrap()
    }

    async fn open(&self, amount: U256) -> B256 {
        let r = send(
            self.escrow
                .openChannel(self.provider_addr(), amount)
                .from(self.buyer()),
        )
        .await
        .unwrap();
        event::<ChannelOpened>(&r).channelId
    }

    fn voucher(&self, channel: B256, cumulative: U256) -> (Voucher, Bytes) {
        let v = Voucher {
            channelId: channel,
            cumulativeAmount: cumulative,
        };
        let sig = eip712::sign(&self.keys[1], &v, &self.domain).unwrap();
        (v, sig)
    }

    async fn claim(
        &self,
        channel: B256,
        cumulative: U256,
    ) -> Result<TransactionReceipt, EscrowError> {
        let (v, sig) = self.voucher(channel, cumulative);
        send(self.escrow.claim(v, sig).from(self.provider_addr())).await
    }

    /// Withdraws what the escrow credited to account `i`; returns it.
    async fn withdraw(&self, i: usize) -> U256 {
        let owed = self.escrow.balances(self.addr(i)).call().await.unwrap();
        if owed > U256::ZERO {
            send(self.escrow.withdraw().from(self.addr(i)))
                .await
                .unwrap();
        }
        owed
    }

    /// Mines blocks until a new stake epoch starts: stakes made before it count in draws.
    async fn next_epoch(&self) {
        let head = self.provider.get_block_number().await.unwrap();
        let to_boundary = EPOCH_BLOCKS - (head + 1) % EPOCH_BLOCKS;
        self.provider
            .anvil_mine(Some(to_boundary + 1), None)
            .await
            .unwrap();
    }

    /// Draws a disputed ticket's verifiers, again while the escrow re-arms the draw (its seed
    /// block fell in an earlier epoch); the drawn three.
    async fn draw(&self, id: B256) -> Vec<Address> {
        for _ in 0..EPOCH_BLOCKS * 2 {
            self.provider.anvil_mine(Some(1), None).await.unwrap();
            send(self.escrow.drawVerifiers(id)).await.unwrap();
            let record = self.escrow.tickets(id).call().await.unwrap();
            if record.state == 3 {
                assert_eq!(record.drawn, 3);
                return record.verifiers.to_vec();
            }
        }
        panic!("the draw of {id} never happened");
    }

    /// Lets `secs` pass on chain and mines a block.
    async fn travel(&self, secs: u64) {
        self.provider.anvil_increase_time(secs).await.unwrap();
        self.provider.anvil_mine(Some(1), None).await.unwrap();
    }

    /// The channel's cursor: what its vouchers and tickets have paid.
    async fn paid(&self, channel: B256) -> U256 {
        U256::from(self.escrow.channels(channel).call().await.unwrap().paid)
    }

    /// Claims a ticket whose job starts at the channel's cursor (the honest provider claimed the
    /// buyer's latest voucher first).
    async fn claim_ticket(&self, channel: B256, job: &str, amount: U256) -> B256 {
        let before = self.paid(channel).await;
        let r = self
            .try_claim_ticket(channel, job, amount, before, 2_000_000_000)
            .await
            .unwrap();
        event::<TicketClaimed>(&r).ticketId
    }

    async fn try_claim_ticket(
        &self,
        channel: B256,
        job: &str,
        amount: U256,
        cumulative_before: U256,
        deadline: u64,
    ) -> Result<TransactionReceipt, EscrowError> {
        let ticket = Ticket {
            jobId: keccak256(job),
            specHash: keccak256(format!("spec of {job}")),
            channelId: channel,
            cumulativeBefore: cumulative_before,
            maxAmount: amount,
            deadline,
            checkCommit: keccak256(B256::repeat_byte(9)),
            // Prices no charge here reaches (the forge tests price tickets).
            pricePerGFuel: u128::MAX,
            pricePerGpuSecond: 0,
        };
        let result = self.result(channel, job, keccak256("output"), amount);
        let ts = eip712::sign(&self.keys[1], &ticket, &self.domain).unwrap();
        let rs = eip712::sign(&self.keys[2], &result, &self.domain).unwrap();
        send(
            self.escrow
                .claimTicket(ticket, ts, result, rs)
                .from(self.provider_addr()),
        )
        .await
    }

    fn result(&self, channel: B256, job: &str, output: B256, amount: U256) -> ResultCommitment {
        ResultCommitment {
            jobId: keccak256(job),
            specHash: keccak256(format!("spec of {job}")),
            channelId: channel,
            outputHash: output,
            fuelUsed: 42_000,
            gpuMillis: 17,
            amount,
        }
    }
}

fn event<E: SolEvent>(receipt: &TransactionReceipt) -> E {
    receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<E>().ok())
        .map(|l| l.inner.data)
        .expect("event in receipt")
}

#[tokio::test]
async fn anvil_rust_digests_match_contract() {
    let c = Chain::start().await;
    let (v, _) = c.voucher(B256::repeat_byte(1), e18(3));
    let on_chain = c.escrow.hashVoucher(v.clone()).call().await.unwrap();
    assert_eq!(on_chain, eip712::digest(&v, &c.domain));
    let r = c.result(B256::repeat_byte(1), "job", B256::repeat_byte(2), e18(1));
    assert_eq!(
        c.escrow.hashResult(r.clone()).call().await.unwrap(),
        eip712::digest(&r, &c.domain)
    );
    let sep = c.escrow.domainSeparator().call().await.unwrap();
    assert_eq!(sep, c.domain.separator());
}

#[tokio::test]
async fn anvil_channel_claim_batch_and_close() {
    let c = Chain::start().await;
    let provider = c.provider_addr();
    let ch = c.open(e18(100)).await;

    // Claim one voucher: the provider gets the cumulative amount.
    let first = c.claim(ch, e18(10)).await.unwrap();
    assert_eq!(c.balance(provider).await, e18(10));
    let steady = c.claim(ch, e18(25)).await.unwrap();
    assert_eq!(c.balance(provider).await, e18(25));
    println!(
        "gas: first claim {} / steady-state claim {}",
        first.gas_used, steady.gas_used
    );
    assert!(
        steady.gas_used <= 60_000,
        "claim costs {} gas",
        steady.gas_used
    );

    // A stale voucher is refused with a typed error.
    let err = c.claim(ch, e18(20)).await.unwrap_err();
    assert!(
        matches!(err.reverted(), Some(SietchEscrowErrors::NothingToClaim(e)) if e.channelId == ch),
        "{err}"
    );
    // A voucher signed by someone else is refused.
    let forged = Voucher {
        channelId: ch,
        cumulativeAmount: e18(90),
    };
    let sig = eip712::sign(&c.keys[2], &forged, &c.domain).unwrap();
    let err = send(c.escrow.claim(forged, sig).from(provider))
        .await
        .unwrap_err();
    assert!(
        matches!(err.reverted(), Some(SietchEscrowErrors::BadSignature(_))),
        "{err}"
    );

    // Batch claim over 20 channels, one transfer.
    let mut chans = vec![ch];
    for _ in 0..19 {
        let id = c.open(e18(10)).await;
        c.claim(id, e18(1)).await.unwrap();
        chans.push(id);
    }
    let before = c.balance(provider).await;
    let (vs, sigs): (Vec<_>, Vec<_>) = chans
        .iter()
        .map(|id| {
            let cum = if *id == ch { e18(30) } else { e18(2) };
            c.voucher(*id, cum)
        })
        .unzip();
    let batch = send(c.escrow.claimBatch(vs, sigs).from(provider))
        .await
        .unwrap();
    assert_eq!(c.balance(provider).await - before, e18(5 + 19));
    println!(
        "gas: claimBatch(20) {} = {} per voucher",
        batch.gas_used,
        batch.gas_used / 20
    );
    assert!(batch.gas_used / 20 <= 35_000);

    // Close: the buyer starts, the provider still claims, then the rest goes back.
    send(c.escrow.startClose(ch).from(c.buyer())).await.unwrap();
    c.claim(ch, e18(40)).await.unwrap();
    let err = send(c.escrow.finalizeClose(ch)).await.unwrap_err();
    assert!(
        matches!(err.reverted(), Some(SietchEscrowErrors::CloseNotDue(_))),
        "{err}"
    );
    c.travel(CLOSE_DELAY).await;
    let buyer_before = c.balance(c.buyer()).await;
    send(c.escrow.finalizeClose(ch)).await.unwrap();
    assert_eq!(c.balance(c.buyer()).await - buyer_before, e18(60));
    let err = c.claim(ch, e18(50)).await.unwrap_err();
    assert!(
        matches!(
            err.reverted(),
            Some(SietchEscrowErrors::WrongChannelState(_))
        ),
        "{err}"
    );
}

#[tokio::test]
async fn anvil_undisputed_ticket_pays_after_window() {
    let c = Chain::start().await;
    let ch = c.open(e18(100)).await;
    let id = c.claim_ticket(ch, "job-a", e18(7)).await;
    let err = send(c.escrow.finalizeTicket(id)).await.unwrap_err();
    assert!(
        matches!(err.reverted(), Some(SietchEscrowErrors::ChallengeOpen(_))),
        "{err}"
    );
    c.travel(CHALLENGE + 1).await;
    send(c.escrow.finalizeTicket(id)).await.unwrap();
    // Credited, then withdrawn by the provider itself.
    assert_eq!(c.balance(c.provider_addr()).await, U256::ZERO);
    assert_eq!(c.withdraw(2).await, e18(7));
    assert_eq!(c.balance(c.provider_addr()).await, e18(7));
}

/// Job 1 [0, 10] paid by voucher, job 2 [10, 17] ticketed, then paid by voucher during the
/// challenge window: the ticket pays nothing more. Out-of-range and expired tickets are typed errors.
#[tokio::test]
async fn anvil_ticket_and_voucher_pay_a_job_once() {
    let c = Chain::start().await;
    let ch = c.open(e18(100)).await;
    let err = c
        .try_claim_ticket(ch, "job-2", e18(7), e18(10), 2_000_000_000)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.reverted(),
            Some(SietchEscrowErrors::CumulativeNotReached(_))
        ),
        "{err}"
    );
    c.claim(ch, e18(10)).await.unwrap();
    let r = c
        .try_claim_ticket(ch, "job-2", e18(7), e18(10), 2_000_000_000)
        .await
        .unwrap();
    let id = event::<TicketClaimed>(&r).ticketId;
    assert_eq!(
        c.escrow.tickets(id).call().await.unwrap().cumulativeEnd,
        17 * 10u128.pow(18)
    );
    c.claim(ch, e18(17)).await.unwrap();
    c.travel(CHALLENGE + 1).await;
    let receipt = send(c.escrow.finalizeTicket(id)).await.unwrap();
    assert_eq!(event::<TicketSettled>(&receipt).toProvider, U256::ZERO);
    assert_eq!(c.balance(c.provider_addr()).await, e18(17));
    assert_eq!(c.paid(ch).await, e18(17));

    // Vouchers already paid job 2: a ticket for it is refused.
    let err = c
        .try_claim_ticket(ch, "job-2-again", e18(7), e18(10), 2_000_000_000)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.reverted(),
            Some(SietchEscrowErrors::TicketAlreadyPaid(_))
        ),
        "{err}"
    );
    // A ticket past its deadline is refused.
    let err = c
        .try_claim_ticket(ch, "job-3", e18(3), e18(17), 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err.reverted(), Some(SietchEscrowErrors::TicketExpired(_))),
        "{err}"
    );
}

#[tokio::test]
async fn anvil_full_dispute_path() {
    let c = Chain::start().await;
    c.next_epoch().await;
    let ch = c.open(e18(100)).await;
    let id = c.claim_ticket(ch, "job-b", e18(10)).await;
    let buyer_before = c.balance(c.buyer()).await;

    send(c.escrow.dispute(id).from(c.buyer())).await.unwrap();
    let drawn = c.draw(id).await;
    for v in &drawn {
        assert!(
            *v != c.buyer() && *v != c.provider_addr(),
            "a party was drawn"
        );
    }
    let index = |v: &Address| {
        (3..=7)
            .find(|i| c.addr(*i) == *v)
            .expect("drawn from the staked verifiers")
    };

    // Two of three verifiers compute a different output: the provider was wrong.
    for (n, v) in drawn.iter().enumerate() {
        let output = if n < 2 {
            keccak256("honest output")
        } else {
            keccak256("output")
        };
        let r = c.result(ch, "job-b", output, U256::ZERO);
        let sig = eip712::sign(&c.keys[index(v)], &r, &c.domain).unwrap();
        send(c.escrow.submitVerdict(id, r, sig).from(*v))
            .await
            .unwrap();
    }
    let receipt = send(c.escrow.resolve(id)).await.unwrap();
    let settled = event::<TicketSettled>(&receipt);
    assert_eq!(settled.outcome, 2, "ProviderWrong");
    // Refund + bond back + compensation of the ticket amount from the slashed stake, once the
    // buyer withdraws; each majority verifier its fee.
    c.withdraw(1).await;
    assert_eq!(c.balance(c.buyer()).await - buyer_before, e18(10 + 10));
    assert_eq!(c.withdraw(index(&drawn[0])).await, e18(5));
    assert_eq!(c.balance(drawn[0]).await, e18(5));
    let account = c.escrow.accounts(c.provider_addr()).call().await.unwrap();
    assert_eq!(account.stake, 0);

    // Slashed to nothing, the provider can claim no ticket (nor be opened a channel).
    let err = c
        .try_claim_ticket(ch, "job-c", e18(5), c.paid(ch).await, 2_000_000_000)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.reverted(),
            Some(SietchEscrowErrors::ProviderNotStaked(_))
        ),
        "{err}"
    );

    // Staked again, it claims; the buyer disputes and no verifier ever votes: each round
    // ends, is drawn again, and after the last the buyer has everything back and the
    // provider nothing (undecided never pays the provider).
    c.fund(2, e18(1_000)).await;
    send(c.escrow.stake(e18(1_000)).from(c.provider_addr()))
        .await
        .unwrap();
    let id2 = c.claim_ticket(ch, "job-c", e18(5)).await;
    let buyer_before = c.balance(c.buyer()).await;
    send(c.escrow.dispute(id2).from(c.buyer())).await.unwrap();
    let rounds = c.escrow.ROUNDS().call().await.unwrap();
    for round in 0..rounds {
        c.draw(id2).await;
        let err = send(c.escrow.resolve(id2)).await.unwrap_err();
        assert!(
            matches!(err.reverted(), Some(SietchEscrowErrors::VerdictPending(_))),
            "round {round}: {err}"
        );
        c.travel(VERDICT + 1).await;
        send(c.escrow.resolve(id2)).await.unwrap();
    }
    let record = c.escrow.tickets(id2).call().await.unwrap();
    assert_eq!(record.state, 4, "settled after the last round");
    assert_eq!(c.escrow.totalBonds().call().await.unwrap(), U256::ZERO);
    c.withdraw(1).await;
    assert_eq!(
        c.balance(c.buyer()).await - buyer_before,
        e18(5),
        "the buyer's reservation and bond came back"
    );
    assert_eq!(
        c.escrow.balances(c.provider_addr()).call().await.unwrap(),
        U256::ZERO,
        "the provider was paid for an undecided dispute"
    );
}

#[tokio::test]
async fn anvil_bad_config_is_a_typed_error() {
    let anvil = Anvil::at(anvil_binary()).try_spawn().expect("anvil starts");
    let signer: PrivateKeySigner = anvil.keys()[0].clone().into();
    let provider = connect(EthereumWallet::from(signer), anvil.endpoint_url());
    let token = deploy::deploy_mock_token(provider.clone()).await.unwrap();
    let mut bad = config();
    bad.unstakeDelay = 1;
    let err = deploy::deploy_escrow(provider, token, bad)
        .await
        .unwrap_err();
    assert!(
        matches!(err.reverted(), Some(SietchEscrowErrors::BadConfig(_))),
        "{err}"
    );
}
