// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {VerifierPool} from "./VerifierPool.sol";
import {Operators} from "./Operators.sol";

/// @title SietchEscrow
/// @notice Settlement for the Sietch compute market (docs/protocol.md §5): a registry of staked
/// providers, buyer->provider payment channels paid by cumulative EIP-712 vouchers, and tickets
/// that a provider can claim on chain when a buyer withholds a voucher, with disputes decided by
/// three verifiers drawn from the staked registry (see {VerifierPool} and contracts/README.md,
/// "Threat model").
/// @dev Money accounting, which the invariant tests check:
///   token.balanceOf(this) == sum(channel.deposit - channel.paid) + sum(stake + unstaking)
///                            + totalBonds + totalCredits.
/// `paid` is a cursor on the channel's cumulative line: everything below it was paid exactly once.
/// A voucher pays the part of [0, cumulativeAmount] above the cursor; a ticket names its job's range
/// [cumulativeBefore, cumulativeBefore + amount] on the same line and pays the part of it above the
/// cursor. Both move the cursor to the end of what they paid, so a job paid by a voucher is not paid
/// again by a ticket, nor the other way round. What a ticket or a dispute pays is credited, and each
/// party withdraws its own balance, so a recipient that the token refuses blocks nobody else.
/// Fee-on-transfer tokens are refused: every deposit checks that the contract received exactly the
/// amount asked (`TokenFeeOnTransfer`). A token whose balances move without transfers (rebasing
/// down, seizure) is caught, once the shortfall is more than the open channels hold, on the paths
/// that pay one party out of the common pot (`withdraw`, `burn`, `unstake`, `finalizeClose`): the
/// balance must cover stakes, bonds and credits (`totalStaked + totalBonds + totalCredits`) and the
/// payment, else `TokenBalanceShort` (contracts/README.md, "Tokens"; the per-job paths, voucher
/// claims and channel deposits, book nothing more for it).
/// An owner may name an operator key that acts for it ({Operators}); money always goes to the owner.
contract SietchEscrow is EIP712, ReentrancyGuardTransient, VerifierPool, Operators {
    using SafeERC20 for IERC20;
    // ---------------------------------------------------------------- EIP-712 (docs/eip712.md)

    /// @notice Signed by the buyer when it sends a job.
    struct Ticket {
        bytes32 jobId;
        bytes32 specHash;
        bytes32 channelId;
        uint256 cumulativeBefore; // the channel's cumulative voucher amount signed before this job
        uint256 maxAmount;
        uint64 deadline;
        bytes32 checkCommit;
        uint128 pricePerGFuel; // the offer's price per 10^9 fuel
        uint128 pricePerGpuSecond; // the offer's price per GPU-second; 0 for a job without a GPU
    }

    /// @notice Signed by a provider (or a verifier) for the result it computed, for the job's
    /// ticket on one channel: a signed vote counts on that ticket and no other.
    struct ResultCommitment {
        bytes32 jobId;
        bytes32 specHash;
        bytes32 channelId;
        bytes32 outputHash;
        uint64 fuelUsed;
        uint64 gpuMillis;
        uint256 amount;
    }

    /// @notice Signed by the buyer: the cumulative amount it owes on the channel so far.
    struct Voucher {
        bytes32 channelId;
        uint256 cumulativeAmount;
    }

    bytes32 public constant TICKET_TYPEHASH = keccak256(
        "Ticket(bytes32 jobId,bytes32 specHash,bytes32 channelId,uint256 cumulativeBefore,uint256 maxAmount,uint64 deadline,bytes32 checkCommit,uint128 pricePerGFuel,uint128 pricePerGpuSecond)"
    );
    bytes32 public constant RESULT_TYPEHASH = keccak256(
        "ResultCommitment(bytes32 jobId,bytes32 specHash,bytes32 channelId,bytes32 outputHash,uint64 fuelUsed,uint64 gpuMillis,uint256 amount)"
    );
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(bytes32 channelId,uint256 cumulativeAmount)");

    // ---------------------------------------------------------------- parameters

    /// @notice Number of verifiers drawn for a dispute; a dispute never goes ahead with fewer.
    uint256 public constant VERIFIERS = 3;
    /// @notice Draw rounds a dispute gets: a round without a majority by its deadline is drawn
    /// again, and after the last one the buyer is refunded (undecided never pays the provider).
    uint8 public constant ROUNDS = 3;
    /// @notice Where burned slashes go: many ERC-20s refuse transfers to address(0).
    address public constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;

    /// @notice Construction parameters.
    struct Config {
        uint64 closeDelay; // seconds a provider has to claim after a close starts
        uint64 challengeWindow; // seconds a buyer has to dispute a claimed ticket
        uint64 verdictWindow; // seconds the drawn verifiers have to vote; also how long a draw waits for verifiers
        uint64 unstakeDelay; // seconds between requestUnstake and unstake; > challengeWindow + verdictWindow
        uint128 disputeBond; // what a buyer posts to dispute
        uint128 verifierFee; // paid to each verifier that votes with the majority; what a non-voter loses
        uint128 minStake; // active stake a provider needs to be paid through channels, to claim tickets, and to be drawn
        uint128 minDeposit; // smallest channel: stops dust-channel griefing
        uint64 epochBlocks; // blocks per stake epoch: a stake change counts in draws from the next epoch
    }

    /// @notice The settlement token (a stablecoin in production).
    IERC20 public immutable token;
    /// @notice See {Config}.
    uint64 public immutable closeDelay;
    /// @notice See {Config}.
    uint64 public immutable challengeWindow;
    /// @notice See {Config}.
    uint64 public immutable verdictWindow;
    /// @notice See {Config}.
    uint64 public immutable unstakeDelay;
    /// @notice See {Config}.
    uint128 public immutable disputeBond;
    /// @notice See {Config}.
    uint128 public immutable verifierFee;
    /// @notice See {Config}.
    uint128 public immutable minStake;
    /// @notice See {Config}.
    uint128 public immutable minDeposit;
    /// @notice Stake a provider keeps at risk for each of its claimed, unsettled tickets: the pay of
    /// that ticket's verifiers, so every dispute's verifiers are paid whatever happened to the stake.
    uint256 public immutable ticketLock;

    // ---------------------------------------------------------------- state

    /// @notice A registered account: its ed25519 node key and its stake.
    struct Account {
        bytes32 nodeKey; // ed25519 public key of the node (libp2p identity)
        uint128 stake; // active stake: slashable and counted for verifier draws
        uint128 unstaking; // requested for withdrawal: still slashable until withdrawn
        uint64 unlockAt; // when `unstaking` may be withdrawn
        uint32 openTickets; // tickets claimed by this provider and not settled yet
    }

    /// @notice Lifecycle of a channel.
    enum ChannelState {
        None,
        Open,
        Closing,
        Closed
    }

    /// @notice A buyer->provider payment channel. `deposit - paid` is what the channel holds.
    struct Channel {
        address buyer;
        uint64 closesAt;
        ChannelState state;
        address provider;
        uint96 reserved; // held for claimed tickets that are not settled yet (packed with provider)
        uint128 deposit;
        uint128 paid; // cursor on the cumulative line: paid to the provider by vouchers and tickets
    }

    /// @notice Lifecycle of a ticket claimed on chain.
    enum TicketState {
        None,
        Claimed, // challenge window running
        Disputed, // bond posted, waiting for the verifier draw
        Drawn, // verifiers drawn, verdict window running
        Settled // paid out or refunded
    }

    /// @notice How a ticket ended.
    enum Outcome {
        Undisputed, // window passed: provider paid
        ProviderRight, // majority agreed with the provider: provider paid, bond pays the verifiers
        ProviderWrong, // majority disagreed: provider slashed, buyer refunded and compensated
        Undecided // no majority after every round, or too few verifiers: buyer refunded, provider not paid
    }

    /// @notice A ticket claimed on chain, keyed by keccak256(channelId, jobId).
    struct TicketRecord {
        bytes32 channelId;
        bytes32 specHash;
        bytes32 outputHash;
        uint128 amount; // reserved in the channel: the part of the job's range not paid at claim time
        uint64 fuelUsed;
        uint64 deadline; // end of the challenge window, then of the draw's wait, then of the verdict window
        uint64 drawBlock; // block whose hash seeds the verifier draw
        TicketState state;
        uint8 drawn; // how many verifiers were drawn (0 or 3)
        uint8 votesFor;
        uint8 votesAgainst;
        uint8 votedMask; // bit i: verifier i voted
        uint8 agreeMask; // bit i: verifier i agreed with the provider
        uint8 round; // draw round, from 0
        bool undelivered; // disputed as never delivered: if the provider is right, it pays the verifiers
        uint128 cumulativeEnd; // cumulativeBefore + the result's amount: where the job's range ends
        address[3] verifiers;
    }

    /// @notice Registry, by EVM address.
    mapping(address account => Account) public accounts;
    /// @notice Channels by id.
    mapping(bytes32 channelId => Channel) public channels;
    /// @notice Tickets by id.
    // slither-disable-next-line uninitialized-state (written field by field through storage pointers)
    mapping(bytes32 ticketId => TicketRecord) internal _tickets;
    /// @notice Opens so far per (buyer, provider): part of the channel id, so a reopened channel is new.
    mapping(address buyer => mapping(address provider => uint256)) public channelNonce;
    /// @notice What each account may withdraw: settled tickets, refunds, bonds, verifier pay.
    mapping(address account => uint256) public balances;
    /// @notice Total of open dispute bonds (for the accounting invariant).
    uint256 public totalBonds;
    /// @notice Total of `balances` (for the accounting invariant).
    uint256 public totalCredits;
    /// @notice Total of every account's stake and unstaking (for the balance check and the
    /// accounting invariant).
    uint256 public totalStaked;
    /// Accounts that named an operator (until they revoke with no ticket open): their slashes
    /// compensate nobody (see {_slash}).
    mapping(address owner => bool) internal _operated;

    // ---------------------------------------------------------------- events

    /// @notice An account registered or rotated its ed25519 node key. `proof` is the key's
    /// ed25519 signature over the registration message (see {register}); nodes trust the
    /// binding only when it verifies.
    event Registered(address indexed account, bytes32 nodeKey, bytes proof);
    /// @notice Stake added; `total` is the account's active stake after it.
    event Staked(address indexed account, uint256 amount, uint256 total);
    /// @notice Stake moved to unstaking; `unstaking` is the whole pending amount.
    event UnstakeRequested(address indexed account, uint256 amount, uint256 unstaking, uint64 unlockAt);
    /// @notice Unstaking withdrawn.
    event Unstaked(address indexed account, uint256 amount);
    /// @notice A channel was opened.
    event ChannelOpened(
        bytes32 indexed channelId, address indexed buyer, address indexed provider, uint256 amount, uint256 nonce
    );
    /// @notice A channel was topped up; `deposit` is its total deposit after it.
    event ChannelToppedUp(bytes32 indexed channelId, uint256 amount, uint256 deposit);
    /// @notice A voucher was claimed: `amount` moved to the provider, `paid` is the channel's cumulative.
    event VoucherClaimed(
        bytes32 indexed channelId, address indexed provider, uint256 cumulativeAmount, uint256 amount, uint256 paid
    );
    /// @notice A close was started by `by`; the channel closes at `closesAt`.
    event CloseStarted(bytes32 indexed channelId, address indexed by, uint64 closesAt);
    /// @notice A channel was finalized; `refund` went back to the buyer.
    event ChannelClosed(bytes32 indexed channelId, uint256 refund);
    /// @notice A provider claimed a ticket; the challenge window ends at `challengeEnds`. `reserved`
    /// is what the channel holds for it (the part of [cumulativeEnd - amount, cumulativeEnd] that
    /// vouchers had not paid).
    event TicketClaimed(
        bytes32 indexed ticketId,
        bytes32 indexed channelId,
        bytes32 indexed jobId,
        uint256 amount,
        bytes32 outputHash,
        uint64 fuelUsed,
        uint64 challengeEnds,
        uint256 reserved,
        uint256 cumulativeEnd
    );
    /// @notice The buyer disputed a ticket (`undelivered`: it says it never received the output);
    /// verifiers are drawn from the hash of `drawBlock`.
    event TicketDisputed(
        bytes32 indexed ticketId, address indexed buyer, uint256 bond, uint64 drawBlock, bool undelivered
    );
    /// @notice The draw moved to `drawBlock`: its seed block aged out or lies in an earlier epoch, or
    /// fewer than three verifiers could be drawn (`waiting`).
    event DrawRearmed(bytes32 indexed ticketId, uint64 drawBlock, bool waiting);
    /// @notice Verifiers were drawn; they must answer before `verdictDeadline`.
    event VerifiersDrawn(bytes32 indexed ticketId, address[3] verifiers, uint8 drawn, uint64 verdictDeadline);
    /// @notice A round ended without a majority; round `round` is drawn from the hash of `drawBlock`.
    event Redrawn(bytes32 indexed ticketId, uint8 round, uint64 drawBlock);
    /// @notice A verifier's commitment was recorded (`verifier` is the drawn account, also when its
    /// operator signed); `agrees` is whether it matches the provider's.
    event VerdictSubmitted(bytes32 indexed ticketId, address indexed verifier, bool agrees, bytes32 outputHash);
    /// @notice A ticket was settled: `toProvider` credited to the provider from the channel,
    /// `refund` back to the buyer; the bond went `bondToBuyer` back to the buyer, `bondToProvider`
    /// to the provider, the rest to the verifiers (`VerifierPaid`). The channel's `paid` moved by
    /// what the ticket paid: `toProvider`, plus, for a delivery dispute the provider won, the
    /// verifiers' pay taken from it.
    event TicketSettled(
        bytes32 indexed ticketId,
        Outcome outcome,
        uint256 toProvider,
        uint256 refund,
        uint256 bondToBuyer,
        uint256 bondToProvider
    );
    /// @notice A provider was slashed: `verifiers` in fees, `compensation` to the buyer, `burned`
    /// burned; `kept` stays staked (unstaking) for the disputes of its other open tickets.
    event Slashed(
        address indexed provider,
        bytes32 indexed ticketId,
        uint256 amount,
        uint256 verifiers,
        uint256 compensation,
        uint256 burned,
        uint256 kept
    );
    /// @notice A verifier was paid `amount` for its vote on `ticketId`.
    event VerifierPaid(bytes32 indexed ticketId, address indexed verifier, uint256 amount);
    /// @notice A drawn verifier did not vote by the deadline and lost `amount` of its stake (burned).
    event VerifierPenalized(bytes32 indexed ticketId, address indexed verifier, uint256 amount);
    /// @notice `amount` was credited to `account`, whose withdrawable balance is now `balance`.
    event Credited(address indexed account, uint256 amount, uint256 balance);
    /// @notice `account` withdrew `amount` of its balance.
    event Withdrawn(address indexed account, uint256 amount);
    // ---------------------------------------------------------------- errors

    /// @notice A constructor parameter is out of range.
    error BadConfig();
    /// @notice The ed25519 key is zero.
    error ZeroKey();
    /// @notice The account has not registered a node key.
    error NotRegistered(address account);
    /// @notice An amount is zero, too large, or below a minimum.
    error BadAmount(uint256 amount);
    /// @notice The token delivered a different amount than asked (fee-on-transfer, or a rebasing
    /// token's rounding): the escrow does not work with it.
    error TokenFeeOnTransfer(uint256 expected, uint256 received);
    /// @notice The escrow's token balance cannot cover the stakes, bonds and credits it holds and
    /// this payment (`owed`): the token moved balances by itself (rebasing down, seizure). Payouts
    /// from the common pot stop until the balance is made whole again (anyone may send the
    /// difference to the escrow).
    error TokenBalanceShort(uint256 balance, uint256 owed);
    /// @notice Not enough active stake for the request.
    error InsufficientStake(uint256 requested, uint256 available);
    /// @notice Nothing is waiting to be unstaked.
    error NothingToUnstake();
    /// @notice The unstake delay has not passed.
    error StillLocked(uint64 unlockAt);
    /// @notice The provider has claimed tickets that are not settled (or in dispute).
    error OpenTickets(uint256 count);
    /// @notice No channel with this id.
    error UnknownChannel(bytes32 channelId);
    /// @notice The channel is not in a state that allows this.
    error WrongChannelState(bytes32 channelId, ChannelState state);
    /// @notice The caller may not do this.
    error Unauthorized(address caller);
    /// @notice A buyer cannot open a channel to itself.
    error SelfChannel();
    /// @notice The close delay has not passed.
    error CloseNotDue(uint64 closesAt);
    /// @notice The signature is malformed, malleable, or not by the expected signer.
    error BadSignature(address expected);
    /// @notice The voucher pays nothing more (stale, or the channel holds nothing).
    error NothingToClaim(bytes32 channelId);
    /// @notice The arrays of a batch differ in length or are empty.
    error BadBatch();
    /// @notice All vouchers of a batch must pay the same provider.
    error MixedProviders();
    /// @notice The ticket and result commitment do not belong together.
    error MismatchedResult();
    /// @notice The charged amount exceeds the ticket's maxAmount.
    error OverMaxAmount(uint256 amount, uint256 maxAmount);
    /// @notice The charged amount exceeds the metered usage at the ticket's prices.
    error OverCharged(uint256 amount, uint256 cost);
    /// @notice The ticket's deadline (the last second it may be claimed on chain) has passed.
    error TicketExpired(uint64 deadline);
    /// @notice The channel's vouchers have not been claimed up to the ticket's `cumulativeBefore`:
    /// claim the latest voucher first, then the ticket.
    error CumulativeNotReached(uint256 cumulativeBefore, uint256 paid);
    /// @notice Vouchers already paid the ticket's whole range (up to `cumulativeEnd`).
    error TicketAlreadyPaid(uint256 cumulativeEnd, uint256 paid);
    /// @notice The channel cannot cover the ticket.
    error InsufficientChannelBalance(uint256 needed, uint256 available);
    /// @notice This ticket was already claimed.
    error TicketExists(bytes32 ticketId);
    /// @notice The ticket is not in a state that allows this.
    error WrongTicketState(bytes32 ticketId, TicketState state);
    /// @notice The challenge window is over.
    error ChallengeClosed(uint64 challengeEnds);
    /// @notice The challenge window is still running.
    error ChallengeOpen(uint64 challengeEnds);
    /// @notice The verifier draw block has not been mined yet.
    error DrawNotReady(uint64 drawBlock);
    /// @notice The provider's active stake is below what serving needs (`minStake`).
    error ProviderNotStaked(address provider, uint256 stake, uint256 required);
    /// @notice The caller's balance is zero.
    error NothingToWithdraw();
    /// @notice The signer is not a drawn verifier of this ticket, or already voted.
    error NotAVerifier(address signer);
    /// @notice No majority yet and the verdict window is still running.
    error VerdictPending(uint64 verdictDeadline);

    // ---------------------------------------------------------------- construction

    /// @param token_ the settlement ERC-20 (no fee-on-transfer, no rebasing)
    /// @param cfg windows, delays and amounts; see {Config}
    constructor(IERC20 token_, Config memory cfg) EIP712("Sietch", "1") VerifierPool(cfg.epochBlocks) {
        if (
            address(token_) == address(0) || cfg.closeDelay == 0 || cfg.challengeWindow == 0 || cfg.verdictWindow == 0
                || cfg.unstakeDelay <= uint256(cfg.challengeWindow) + cfg.verdictWindow
                || cfg.disputeBond < VERIFIERS * uint256(cfg.verifierFee) || cfg.minStake == 0 || cfg.minDeposit == 0
                || cfg.epochBlocks < 2 || cfg.epochBlocks > 256
        ) revert BadConfig();
        token = token_;
        closeDelay = cfg.closeDelay;
        challengeWindow = cfg.challengeWindow;
        verdictWindow = cfg.verdictWindow;
        unstakeDelay = cfg.unstakeDelay;
        disputeBond = cfg.disputeBond;
        verifierFee = cfg.verifierFee;
        minStake = cfg.minStake;
        minDeposit = cfg.minDeposit;
        ticketLock = VERIFIERS * uint256(cfg.verifierFee);
    }

    // ---------------------------------------------------------------- registry

    /// @notice Registers (or rotates) the caller's ed25519 node key, with `proof`: the key's
    /// 64-byte ed25519 signature over `"sietch register" ‖ chainId (8 bytes, big-endian) ‖ this
    /// escrow (20 bytes) ‖ the caller (20 bytes)`. The EVM has no ed25519 precompile, so the
    /// escrow checks only the length and publishes the proof in `Registered`; every node
    /// verifies it and treats an account whose proof fails as unregistered, so registering a
    /// key one does not hold (someone else's, to pin its slashes on them) binds nothing.
    /// An operator registers for its owner: the account is then the owner (and the proof signs
    /// the owner's address).
    function register(bytes32 nodeKey, bytes calldata proof) external {
        address account = _principal(msg.sender);
        if (nodeKey == bytes32(0)) revert ZeroKey();
        if (proof.length != 64) revert BadSignature(account);
        accounts[account].nodeKey = nodeKey;
        emit Registered(account, nodeKey, proof);
        _syncPool(account);
    }

    /// @notice Adds `amount` to the caller's stake. The caller must be registered. The stake counts
    /// in verifier draws from the next epoch on.
    function stake(uint256 amount) external nonReentrant {
        Account storage a = accounts[msg.sender];
        if (a.nodeKey == bytes32(0)) revert NotRegistered(msg.sender);
        if (amount == 0 || amount > type(uint128).max - a.stake) revert BadAmount(amount);
        a.stake += uint128(amount);
        totalStaked += amount;
        emit Staked(msg.sender, amount, a.stake);
        _syncPool(msg.sender);
        _pull(amount);
    }

    /// @notice Moves `amount` of active stake to unstaking; it can be withdrawn after `unstakeDelay`.
    /// The delay restarts for the whole pending amount. Unstaking stays slashable until withdrawn.
    function requestUnstake(uint256 amount) external {
        Account storage a = accounts[msg.sender];
        if (amount == 0) revert BadAmount(amount);
        if (amount > a.stake) revert InsufficientStake(amount, a.stake);
        a.stake -= uint128(amount);
        a.unstaking += uint128(amount);
        a.unlockAt = uint64(block.timestamp) + unstakeDelay;
        emit UnstakeRequested(msg.sender, amount, a.unstaking, a.unlockAt);
        _syncPool(msg.sender);
    }

    /// @notice Withdraws the caller's unstaking amount once unlocked and no ticket of it is open.
    function unstake() external nonReentrant {
        Account storage a = accounts[msg.sender];
        uint256 amount = a.unstaking;
        if (amount == 0) revert NothingToUnstake();
        if (block.timestamp < a.unlockAt) revert StillLocked(a.unlockAt);
        if (a.openTickets != 0) revert OpenTickets(a.openTickets);
        a.unstaking = 0;
        totalStaked -= amount;
        emit Unstaked(msg.sender, amount);
        _sendChecked(msg.sender, amount);
    }

    /// @notice Asks for a seat in the verifier pool again, after the pool refused or evicted the
    /// caller (see {VerifierPool}).
    function joinPool() external {
        _rejoin(msg.sender);
    }

    /// @notice Withdraws everything credited to the caller.
    function withdraw() external nonReentrant {
        _payOut(msg.sender);
    }

    /// @notice Sends what slashes and penalties burned to `BURN_ADDRESS`; anyone may call.
    function burn() external nonReentrant {
        _payOut(BURN_ADDRESS);
    }

    // ---------------------------------------------------------------- channels

    /// @notice Opens a channel from the caller (buyer) to `provider`, funded with `amount`. The
    /// provider must be registered and hold at least `minStake` of active stake.
    /// @return channelId unique per open, even for the same pair (a per-pair nonce is part of it)
    function openChannel(address provider, uint256 amount) external nonReentrant returns (bytes32 channelId) {
        if (provider == msg.sender) revert SelfChannel();
        Account storage p = accounts[provider];
        if (p.nodeKey == bytes32(0)) revert NotRegistered(provider);
        if (p.stake < minStake) revert ProviderNotStaked(provider, p.stake, minStake);
        if (amount < minDeposit || amount > type(uint128).max) revert BadAmount(amount);
        uint256 nonce = channelNonce[msg.sender][provider]++;
        channelId = keccak256(abi.encode(block.chainid, address(this), msg.sender, provider, nonce));
        channels[channelId] = Channel({
            buyer: msg.sender,
            closesAt: 0,
            state: ChannelState.Open,
            provider: provider,
            reserved: 0,
            deposit: uint128(amount),
            paid: 0
        });
        emit ChannelOpened(channelId, msg.sender, provider, amount, nonce);
        _pull(amount);
    }
    /// @notice Adds `amount` to an open channel. Only its buyer may; not once a close started.
    function topUp(bytes32 channelId, uint256 amount) external nonReentrant {
        Channel storage c = _channel(channelId);
        if (msg.sender != c.buyer) revert Unauthorized(msg.sender);
        if (c.state != ChannelState.Open) revert WrongChannelState(channelId, c.state);
        if (amount == 0 || amount > type(uint128).max - c.deposit) revert BadAmount(amount);
        c.deposit += uint128(amount);
        emit ChannelToppedUp(channelId, amount, c.deposit);
        _pull(amount);
    }

    /// @notice Pays the channel's provider what `voucher` owes beyond what was already paid, capped by
    /// what the channel holds (a later top-up lets the same voucher pay the rest). Anyone may submit.
    function claim(Voucher calldata voucher, bytes calldata signature) external nonReentrant {
        (address provider, uint256 amount) = _applyVoucher(voucher, signature);
        if (amount == 0) revert NothingToClaim(voucher.channelId);
        token.safeTransfer(provider, amount);
    }

    /// @notice Claims many vouchers that pay the same provider, in one transfer. Vouchers that pay
    /// nothing more are skipped; the batch reverts only if all of them pay nothing.
    function claimBatch(Voucher[] calldata vouchers, bytes[] calldata signatures) external nonReentrant {
        uint256 n = vouchers.length;
        if (n == 0 || n != signatures.length) revert BadBatch();
        (address provider, uint256 total) = _applyVoucher(vouchers[0], signatures[0]);
        for (uint256 i = 1; i < n; ++i) {
            (address p, uint256 amount) = _applyVoucher(vouchers[i], signatures[i]);
            if (p != provider) revert MixedProviders();
            total += amount;
        }
        if (total == 0) revert NothingToClaim(vouchers[0].channelId);
        token.safeTransfer(provider, total);
    }

    /// @notice Starts closing a channel; its buyer or provider (or the operator of either) may.
    /// The provider keeps claiming until `finalizeClose`, which is possible `closeDelay` seconds
    /// from now.
    function startClose(bytes32 channelId) external {
        Channel storage c = _channel(channelId);
        if (!_actsFor(msg.sender, c.buyer) && !_actsFor(msg.sender, c.provider)) revert Unauthorized(msg.sender);
        if (c.state != ChannelState.Open) revert WrongChannelState(channelId, c.state);
        uint64 closesAt = uint64(block.timestamp) + closeDelay;
        c.state = ChannelState.Closing;
        c.closesAt = closesAt;
        emit CloseStarted(channelId, msg.sender, closesAt);
    }

    /// @notice Closes a channel whose close delay passed and returns the rest to the buyer; anyone
    /// may call. Money reserved for claimed tickets stays until those settle.
    function finalizeClose(bytes32 channelId) external nonReentrant {
        Channel storage c = _channel(channelId);
        if (c.state != ChannelState.Closing) revert WrongChannelState(channelId, c.state);
        if (block.timestamp < c.closesAt) revert CloseNotDue(c.closesAt);
        uint128 refund = c.deposit - c.paid - c.reserved;
        c.deposit -= refund;
        c.state = ChannelState.Closed;
        emit ChannelClosed(channelId, refund);
        if (refund != 0) _sendChecked(c.buyer, refund);
    }

    // ---------------------------------------------------------------- tickets and disputes

    /// @notice The id of the ticket for `jobId` on `channelId`.
    function ticketId(bytes32 channelId, bytes32 jobId) public pure returns (bytes32) {
        return keccak256(abi.encode(channelId, jobId));
    }

    /// @notice The channel's provider (or its operator) posts a buyer-signed ticket with its own
    /// (or its operator's) signed result
    /// commitment, no later than the ticket's `deadline`; the challenge window starts. The job's
    /// range on the channel's cumulative line is [cumulativeBefore, cumulativeBefore + result.amount];
    /// the channel's vouchers must have been claimed up to `cumulativeBefore` (so the cursor `paid`
    /// is inside or past the range), and the part of the range above `paid` is reserved. The
    /// provider must hold `minStake` of active stake, and `ticketLock` (active or unstaking) for
    /// each of its open tickets, this one included.
    function claimTicket(
        Ticket calldata ticket,
        bytes calldata buyerSignature,
        ResultCommitment calldata result,
        bytes calldata providerSignature
    ) external returns (bytes32 id) {
        Channel storage c = _channel(ticket.channelId);
        if (c.state != ChannelState.Open && c.state != ChannelState.Closing) {
            revert WrongChannelState(ticket.channelId, c.state);
        }
        // Only the provider: a buyer holding both signatures could otherwise put on chain a job it
        // already paid by voucher, and a stranger could pick when the challenge window starts.
        address provider = c.provider;
        if (!_actsFor(msg.sender, provider)) revert Unauthorized(msg.sender);
        _lockForTicket(provider);
        if (block.timestamp > ticket.deadline) revert TicketExpired(ticket.deadline);
        if (
            result.jobId != ticket.jobId || result.specHash != ticket.specHash
                || result.channelId != ticket.channelId
        ) revert MismatchedResult();
        if (result.amount > ticket.maxAmount) revert OverMaxAmount(result.amount, ticket.maxAmount);
        // The charge is checkable against the usage the verifiers verify (fuel) at the prices
        // the buyer signed: cost = ceil((fuel · pricePerGFuel + gpuMillis · 10^6 · pricePerGpuSecond) / 10^9).
        uint256 cost = (
            uint256(result.fuelUsed) * ticket.pricePerGFuel
                + uint256(result.gpuMillis) * 1e6 * ticket.pricePerGpuSecond + 1e9 - 1
        ) / 1e9;
        if (result.amount > cost) revert OverCharged(result.amount, cost);
        if (result.amount == 0 || result.amount > type(uint96).max) revert BadAmount(result.amount);
        _checkSigner(hashTicket(ticket), buyerSignature, c.buyer);
        if (!_actsFor(_recover(hashResult(result), providerSignature), provider)) revert BadSignature(provider);

        id = ticketId(ticket.channelId, ticket.jobId);
        TicketRecord storage t = _tickets[id];
        if (t.state != TicketState.None) revert TicketExists(id);
        (uint256 need, uint256 end) = _reserve(c, ticket.cumulativeBefore, result.amount);

        uint64 challengeEnds = uint64(block.timestamp) + challengeWindow;
        t.channelId = ticket.channelId;
        t.specHash = ticket.specHash;
        t.outputHash = result.outputHash;
        t.amount = uint128(need);
        t.fuelUsed = result.fuelUsed;
        t.deadline = challengeEnds;
        t.state = TicketState.Claimed;
        t.cumulativeEnd = uint128(end); // end = paid + need <= deposit < 2^128
        _emitClaimed(id, ticket, result, challengeEnds, need, end);
    }

    /// @notice Pays an undisputed ticket to its provider once the challenge window is over.
    function finalizeTicket(bytes32 id) external {
        TicketRecord storage t = _tickets[id];
        if (t.state != TicketState.Claimed) revert WrongTicketState(id, t.state);
        if (block.timestamp <= t.deadline) revert ChallengeOpen(t.deadline);
        Channel storage c = channels[t.channelId];
        _settle(id, t, c, Outcome.Undisputed);
    }

    /// @notice The buyer disputes a claimed ticket's result within the challenge window, posting
    /// `disputeBond`. Verifiers are drawn from the hash of the next block, which nobody knows now.
    function dispute(bytes32 id) external nonReentrant {
        _dispute(id, false);
    }

    /// @notice The buyer disputes a claimed ticket whose output it never received. Verifiers vote
    /// "agree" only with the provider's output in hand (and pass it on to the buyer), so the buyer
    /// ends with the output or its money back; if the provider is found right, its output appeared
    /// only in the dispute, so it pays the verifiers from the ticket and the bond goes back.
    function disputeUndelivered(bytes32 id) external nonReentrant {
        _dispute(id, true);
    }

    function _dispute(bytes32 id, bool undelivered) private {
        TicketRecord storage t = _tickets[id];
        if (t.state != TicketState.Claimed) revert WrongTicketState(id, t.state);
        if (block.timestamp > t.deadline) revert ChallengeClosed(t.deadline);
        if (!_actsFor(msg.sender, channels[t.channelId].buyer)) revert Unauthorized(msg.sender);
        uint64 drawBlock = uint64(block.number) + 1;
        t.state = TicketState.Disputed;
        t.drawBlock = drawBlock;
        t.deadline = uint64(block.timestamp) + verdictWindow; // how long the draw waits for verifiers
        t.undelivered = undelivered;
        totalBonds += disputeBond;
        emit TicketDisputed(id, msg.sender, disputeBond, drawBlock, undelivered);
        _pull(disputeBond);
    }

    /// @notice Draws the three verifiers of a disputed ticket; anyone may call once the draw block is
    /// mined. The draw reads the pool as it stands in the draw block's epoch, so it must run in that
    /// epoch: if it runs later (or the block's hash aged out) it moves to the next block instead.
    /// With fewer than three eligible accounts it waits (re-arms); once the wait is over, the ticket
    /// settles as undecided and the buyer is refunded.
    function drawVerifiers(bytes32 id) external {
        TicketRecord storage t = _tickets[id];
        if (t.state != TicketState.Disputed) revert WrongTicketState(id, t.state);
        if (block.number <= t.drawBlock) revert DrawNotReady(t.drawBlock);
        bytes32 seed = blockhash(t.drawBlock);
        if (seed == bytes32(0) || epochOf(t.drawBlock) != currentEpoch()) {
            _rearm(id, t, false);
            return;
        }
        Channel storage c = channels[t.channelId];
        address[] memory picked = _draw(keccak256(abi.encode(seed, id, t.round)), c.provider, c.buyer, VERIFIERS);
        if (picked.length < VERIFIERS) {
            if (block.timestamp > t.deadline) _settle(id, t, c, Outcome.Undecided);
            else _rearm(id, t, true);
            return;
        }
        uint64 verdictDeadline = uint64(block.timestamp) + verdictWindow;
        address[3] memory drawn = [picked[0], picked[1], picked[2]];
        t.verifiers = drawn;
        t.drawn = uint8(VERIFIERS);
        t.deadline = verdictDeadline;
        t.state = TicketState.Drawn;
        emit VerifiersDrawn(id, drawn, uint8(VERIFIERS), verdictDeadline);
    }

    /// @notice Records a drawn verifier's signed result commitment for the disputed job (signed
    /// by the verifier or by its operator). It agrees with the provider iff output hash and fuel
    /// are equal. Anyone may relay it.
    function submitVerdict(bytes32 id, ResultCommitment calldata result, bytes calldata signature) external {
        TicketRecord storage t = _tickets[id];
        if (t.state != TicketState.Drawn) revert WrongTicketState(id, t.state);
        if (block.timestamp > t.deadline) revert ChallengeClosed(t.deadline);
        // The vote's channel and job make the ticket id: a vote signed for another ticket fails.
        if (ticketId(result.channelId, result.jobId) != id || result.specHash != t.specHash) revert MismatchedResult();
        address signer = _recover(hashResult(result), signature);
        if (signer == address(0)) revert BadSignature(address(0));
        uint256 slot = _slotOf(t, signer);
        // An operator votes for its owner (the account drawn).
        if (slot == VERIFIERS && ownerOf[signer] != address(0)) slot = _slotOf(t, ownerOf[signer]);
        if (slot == VERIFIERS || t.votedMask & (1 << slot) != 0) revert NotAVerifier(signer);
        t.votedMask |= uint8(1 << slot);
        bool agrees = result.outputHash == t.outputHash && result.fuelUsed == t.fuelUsed;
        if (agrees) {
            t.votesFor += 1;
            t.agreeMask |= uint8(1 << slot);
        } else {
            t.votesAgainst += 1;
        }
        emit VerdictSubmitted(id, t.verifiers[slot], agrees, result.outputHash);
    }

    /// @notice Settles a disputed ticket by majority of the drawn verifiers as soon as there is one.
    /// After the verdict deadline without a majority, the verifiers that did not vote lose
    /// `verifierFee` of their stake and the dispute is drawn again; after `ROUNDS` rounds the ticket
    /// settles as undecided (the buyer is refunded). Anyone may call.
    function resolve(bytes32 id) external {
        TicketRecord storage t = _tickets[id];
        if (t.state != TicketState.Drawn) revert WrongTicketState(id, t.state);
        Outcome outcome;
        if (t.votesAgainst >= 2) {
            outcome = Outcome.ProviderWrong;
        } else if (t.votesFor >= 2) {
            outcome = Outcome.ProviderRight;
        } else {
            if (block.timestamp <= t.deadline) revert VerdictPending(t.deadline);
            _penalizeAbsent(id, t);
            if (t.round + 1 < ROUNDS) {
                _redraw(id, t);
                return;
            }
            outcome = Outcome.Undecided;
        }
        _settle(id, t, channels[t.channelId], outcome);
    }

    /// The slot of `who` among the ticket's drawn verifiers; `VERIFIERS` when it was not drawn.
    function _slotOf(TicketRecord storage t, address who) private view returns (uint256 slot) {
        slot = VERIFIERS;
        for (uint256 i = 0; i < t.drawn; ++i) {
            if (t.verifiers[i] == who) slot = i;
        }
    }

    /// @notice A claimed ticket.
    function tickets(bytes32 id) external view returns (TicketRecord memory) {
        return _tickets[id];
    }

    // ---------------------------------------------------------------- EIP-712 views

    /// @notice The EIP-712 domain separator (name "Sietch", version "1", this chain, this contract).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice EIP-712 digest of a ticket.
    function hashTicket(Ticket calldata t) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    TICKET_TYPEHASH,
                    t.jobId,
                    t.specHash,
                    t.channelId,
                    t.cumulativeBefore,
                    t.maxAmount,
                    t.deadline,
                    t.checkCommit,
                    t.pricePerGFuel,
                    t.pricePerGpuSecond
                )
            )
        );
    }

    /// @notice EIP-712 digest of a result commitment.
    function hashResult(ResultCommitment calldata r) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    RESULT_TYPEHASH, r.jobId, r.specHash, r.channelId, r.outputHash, r.fuelUsed, r.gpuMillis, r.amount
                )
            )
        );
    }

    /// @notice EIP-712 digest of a voucher.
    function hashVoucher(Voucher calldata v) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(VOUCHER_TYPEHASH, v.channelId, v.cumulativeAmount)));
    }

    // ---------------------------------------------------------------- internals

    function _channel(bytes32 channelId) private view returns (Channel storage c) {
        c = channels[channelId];
        if (c.state == ChannelState.None) revert UnknownChannel(channelId);
    }

    /// Checks a voucher and books its payment; returns whom to pay and how much (maybe 0).
    function _applyVoucher(Voucher calldata v, bytes calldata signature)
        private
        returns (address provider, uint256 amount)
    {
        Channel storage c = channels[v.channelId];
        ChannelState state = c.state;
        if (state != ChannelState.Open && state != ChannelState.Closing) revert WrongChannelState(v.channelId, state);
        _checkSigner(hashVoucher(v), signature, c.buyer);
        provider = c.provider;
        uint256 paid = c.paid;
        if (v.cumulativeAmount <= paid) return (provider, 0);
        uint256 available = uint256(c.deposit) - paid - c.reserved;
        amount = v.cumulativeAmount - paid;
        if (amount > available) amount = available;
        if (amount == 0) return (provider, 0);
        uint256 newPaid = paid + amount;
        c.paid = uint128(newPaid);
        emit VoucherClaimed(v.channelId, provider, v.cumulativeAmount, amount, newPaid);
    }

    /// Reserves, for a ticket whose job's range is [cumulativeBefore, cumulativeBefore + amount],
    /// the part of the range above the cursor `paid`; returns it and the range's end. The cursor only
    /// moves up, so `cumulativeBefore <= paid` stays true until the ticket settles, and what it pays
    /// then (`end - paid` at most) never exceeds `need` <= amount.
    function _reserve(Channel storage c, uint256 cumulativeBefore, uint256 amount)
        private
        returns (uint256 need, uint256 end)
    {
        uint256 paid = c.paid;
        if (cumulativeBefore > paid) revert CumulativeNotReached(cumulativeBefore, paid);
        end = cumulativeBefore + amount; // <= 2^128 + 2^96: no overflow
        if (end <= paid) revert TicketAlreadyPaid(end, paid);
        need = end - paid;
        uint256 available = c.deposit - paid - c.reserved;
        if (need > available) revert InsufficientChannelBalance(need, available);
        c.reserved += uint96(need); // need <= amount < 2^96
    }

    /// Refuses malformed, malleable (high-s, v not 27/28) or foreign signatures.
    function _checkSigner(bytes32 digest, bytes calldata signature, address expected) private pure {
        if (_recover(digest, signature) != expected) revert BadSignature(expected);
    }

    /// The signer of `signature` over `digest`, or address(0) if it is malformed or malleable
    /// (OZ ECDSA accepts only 65-byte r || s || v with v in {27, 28} and low s).
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        // slither-disable-next-line unused-return (the third value only details the error)
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        return err == ECDSA.RecoverError.NoError ? signer : address(0);
    }

    /// Counts one more open ticket for `provider`, which must hold `minStake` of active stake and
    /// `ticketLock` (active or unstaking) for each of its open tickets, this one included.
    function _lockForTicket(address provider) private {
        Account storage p = accounts[provider];
        if (p.stake < minStake) revert ProviderNotStaked(provider, p.stake, minStake);
        uint256 locked = (uint256(p.openTickets) + 1) * ticketLock;
        uint256 held = uint256(p.stake) + p.unstaking;
        if (held < locked) revert InsufficientStake(locked, held);
        p.openTickets += 1;
    }

    function _emitClaimed(
        bytes32 id,
        Ticket calldata ticket,
        ResultCommitment calldata result,
        uint64 challengeEnds,
        uint256 reserved,
        uint256 end
    ) private {
        emit TicketClaimed(
            id,
            ticket.channelId,
            ticket.jobId,
            result.amount,
            result.outputHash,
            result.fuelUsed,
            challengeEnds,
            reserved,
            end
        );
    }

    /// Settles a ticket according to `outcome`: what it pays, refunds, slashes and what becomes of
    /// the bond, all as credits. A ticket that pays pays the part of its job's range above the
    /// cursor (vouchers claimed since the claim may have paid some or all of it) and moves the cursor
    /// to the range's end; the rest of its reservation stays in the channel, or goes back to the
    /// buyer if the channel is already closed. A ticket that does not pay gives the buyer its whole
    /// reservation back and leaves the cursor where it was.
    function _settle(bytes32 id, TicketRecord storage t, Channel storage c, Outcome outcome) private {
        uint96 amount = uint96(t.amount);
        address provider = c.provider;
        address buyer = c.buyer;
        bool disputed = outcome != Outcome.Undisputed;
        t.state = TicketState.Settled;
        c.reserved -= amount;
        accounts[provider].openTickets -= 1;
        if (disputed) totalBonds -= disputeBond;

        if (outcome == Outcome.ProviderWrong || outcome == Outcome.Undecided) {
            c.deposit -= amount;
            emit TicketSettled(id, outcome, 0, amount, disputeBond, 0);
            uint256 compensation = outcome == Outcome.ProviderWrong ? _slash(id, t, provider, amount) : 0;
            _credit(buyer, uint256(amount) + disputeBond + compensation);
            return;
        }

        // pay = max(0, end - paid) <= amount, because `paid` was >= end - amount at the claim and
        // only grew since; the cursor then moves to max(paid, end).
        uint256 end = t.cumulativeEnd;
        uint256 paid = c.paid;
        uint256 pay = end > paid ? end - paid : 0;
        if (pay != 0) c.paid = uint128(end);
        uint256 refund = 0;
        if (c.state == ChannelState.Closed) {
            // A closed channel holds only reservations; what this one did not pay goes back.
            refund = amount - pay;
            c.deposit -= uint128(refund);
        }
        uint256 bondToProvider = 0;
        uint256 bondToBuyer = 0;
        if (outcome == Outcome.ProviderRight) {
            if (t.undelivered) {
                // The output reached the buyer only through the verifiers: the provider pays
                // them from the ticket, the bond (less what the ticket could not cover) goes back.
                uint256 fees = _payVerifiers(id, t, true, pay + disputeBond);
                uint256 fromPay = fees < pay ? fees : pay;
                pay -= fromPay;
                bondToBuyer = disputeBond - (fees - fromPay);
            } else {
                bondToProvider = disputeBond - _payVerifiers(id, t, true, disputeBond);
            }
        }
        emit TicketSettled(id, outcome, pay, refund, bondToBuyer, bondToProvider);
        if (refund + bondToBuyer != 0) _credit(buyer, refund + bondToBuyer);
        if (pay + bondToProvider != 0) _credit(provider, pay + bondToProvider);
    }

    /// Slashes `provider` for ticket `id`: its whole stake (active and unstaking) except the locks
    /// of its other open tickets, which stay at risk as unstaking. The majority verifiers are paid
    /// first, then the buyer is compensated up to `amount`; the rest is burned. A provider that
    /// named an operator compensates nobody (the rest is burned): otherwise a stolen operator key
    /// could sign a wrong result on a channel it opened as a buyer, win the dispute against its
    /// owner and take the stake as compensation. Returns the compensation.
    function _slash(bytes32 id, TicketRecord storage t, address provider, uint256 amount)
        private
        returns (uint256 compensation)
    {
        Account storage a = accounts[provider];
        uint256 total = uint256(a.stake) + a.unstaking;
        uint256 kept = uint256(a.openTickets) * ticketLock; // the other open tickets' locks
        if (kept > total) kept = total;
        uint256 slashed = total - kept;
        a.stake = 0;
        a.unstaking = uint128(kept);
        totalStaked -= slashed;
        _syncPool(provider);
        uint256 fees = _payVerifiers(id, t, false, slashed);
        uint256 left = slashed - fees;
        compensation = _operated[provider] ? 0 : (left < amount ? left : amount);
        emit Slashed(provider, id, slashed, fees, compensation, left - compensation, kept);
        if (left - compensation != 0) _credit(BURN_ADDRESS, left - compensation);
    }

    /// Credits `verifierFee` (while `budget` lasts) to each verifier that voted `agreed`; returns
    /// the total.
    function _payVerifiers(bytes32 id, TicketRecord storage t, bool agreed, uint256 budget)
        private
        returns (uint256 total)
    {
        uint8 mask = agreed ? t.agreeMask : t.votedMask & ~t.agreeMask;
        for (uint256 i = 0; i < t.drawn; ++i) {
            if (mask & (1 << i) == 0) continue;
            uint256 fee = budget - total < verifierFee ? budget - total : verifierFee;
            if (fee == 0) break;
            total += fee;
            address v = t.verifiers[i];
            emit VerifierPaid(id, v, fee);
            _credit(v, fee);
        }
    }

    /// Burns up to `verifierFee` of the stake of each drawn verifier that did not vote, never
    /// touching the locks of its own open tickets (a verifier may be a provider too).
    function _penalizeAbsent(bytes32 id, TicketRecord storage t) private {
        for (uint256 i = 0; i < t.drawn; ++i) {
            if (t.votedMask & (1 << i) != 0) continue;
            address v = t.verifiers[i];
            Account storage a = accounts[v];
            uint256 free = uint256(a.stake) + a.unstaking;
            uint256 locked = uint256(a.openTickets) * ticketLock;
            free = free > locked ? free - locked : 0;
            uint256 penalty = free < verifierFee ? free : verifierFee;
            if (penalty == 0) continue;
            uint256 fromStake = penalty < a.stake ? penalty : a.stake;
            a.stake -= uint128(fromStake);
            a.unstaking -= uint128(penalty - fromStake);
            totalStaked -= penalty;
            _syncPool(v);
            emit VerifierPenalized(id, v, penalty);
            _credit(BURN_ADDRESS, penalty);
        }
    }

    /// Starts the next draw round of a dispute whose round ended without a majority.
    function _redraw(bytes32 id, TicketRecord storage t) private {
        t.round += 1;
        t.votesFor = 0;
        t.votesAgainst = 0;
        t.votedMask = 0;
        t.agreeMask = 0;
        t.drawn = 0;
        delete t.verifiers;
        t.state = TicketState.Disputed;
        t.drawBlock = uint64(block.number) + 1;
        t.deadline = uint64(block.timestamp) + verdictWindow;
        emit Redrawn(id, t.round, t.drawBlock);
    }

    /// Moves a draw to the next block.
    function _rearm(bytes32 id, TicketRecord storage t, bool waiting) private {
        uint64 next = uint64(block.number) + 1;
        t.drawBlock = next;
        emit DrawRearmed(id, next, waiting);
    }

    /// The account's draw weight from the next epoch on: its active stake once registered with at
    /// least `minStake`, else nothing.
    function _syncPool(address account) private {
        Account storage a = accounts[account];
        bool eligible = a.nodeKey != bytes32(0) && a.stake >= minStake;
        _setWeight(account, eligible ? a.stake : 0);
    }

    function _payOut(address account) private {
        uint256 amount = balances[account];
        if (amount == 0) revert NothingToWithdraw();
        balances[account] = 0;
        totalCredits -= amount;
        emit Withdrawn(account, amount);
        _sendChecked(account, amount);
    }

    /// Sends `amount` (already booked out) to `to`, refusing while the token balance cannot
    /// cover it and the stakes, bonds and credits the escrow holds: the token moved balances by
    /// itself (rebasing down, seizure). The open channels' money is not counted (a lower bound:
    /// summing it would cost every voucher claim a storage write).
    function _sendChecked(address to, uint256 amount) private {
        uint256 owed = totalStaked + totalBonds + totalCredits + amount;
        uint256 balance = token.balanceOf(address(this));
        if (balance < owed) revert TokenBalanceShort(balance, owed);
        token.safeTransfer(to, amount);
    }

    function _credit(address account, uint256 amount) private {
        uint256 balance = balances[account] + amount;
        balances[account] = balance;
        totalCredits += amount;
        emit Credited(account, amount, balance);
    }

    /// Pulls exactly `amount` from the caller, refusing tokens that deliver less (fee-on-transfer).
    function _pull(uint256 amount) private {
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert TokenFeeOnTransfer(amount, received);
    }

    /// An operator is no account of the registry (it holds no key and no stake of its own).
    function _mayOperate(address operator) internal view override returns (bool) {
        Account storage a = accounts[operator];
        return a.nodeKey == bytes32(0) && a.stake == 0 && a.unstaking == 0;
    }

    /// Marks an owner as operated from the moment it names an operator; the mark goes when it
    /// revokes with no ticket open (a ticket claimed through the operator may still be disputed).
    function _operatorChanged(address owner, address operator) internal override {
        if (operator != address(0)) _operated[owner] = true;
        else if (accounts[owner].openTickets == 0) _operated[owner] = false;
    }
}
