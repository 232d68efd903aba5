// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";
import {MockToken} from "../src/MockToken.sol";

/// Shared fixture: a token, an escrow with small windows, a buyer, a provider and five verifiers
/// (all registered and staked, their stakes counting in draws: setUp ends at the next epoch), and
/// helpers that sign the EIP-712 messages and drive disputes.
abstract contract Base is Test {
    uint64 internal constant CLOSE_DELAY = 1 days;
    uint64 internal constant CHALLENGE = 1 hours;
    uint64 internal constant VERDICT = 2 hours;
    uint64 internal constant UNSTAKE_DELAY = 7 days;
    uint128 internal constant BOND = 30e18;
    uint128 internal constant FEE = 5e18;
    uint128 internal constant MIN_STAKE = 100e18;
    uint128 internal constant MIN_DEPOSIT = 1e18;
    uint256 internal constant STAKE = 1000e18;
    uint64 internal constant EPOCH_BLOCKS = 10;
    uint64 internal constant TICKET_DEADLINE = 1_800_000_000;

    uint256 internal constant BUYER_PK = 0xB0B;
    uint256 internal constant PROVIDER_PK = 0xA11CE;
    uint256 internal constant VERIFIER_PK0 = 0x1000;
    uint256 internal constant N_VERIFIERS = 5;

    MockToken internal token;
    SietchEscrow internal escrow;
    address internal buyer;
    address internal provider;
    address[] internal verifiers;
    /// Private key of every account the tests may need to sign for (verifiers, pool fillers).
    mapping(address account => uint256) internal pkOf;

    function setUp() public virtual {
        vm.warp(1_700_000_000);
        vm.roll(1000);
        token = _newToken();
        escrow = _deploy(IERC20(address(token)));
        buyer = vm.addr(BUYER_PK);
        provider = vm.addr(PROVIDER_PK);
        pkOf[provider] = PROVIDER_PK;
        token.mint(buyer, 1_000_000e18);
        _registerAndStake(provider, STAKE);
        for (uint256 i = 0; i < N_VERIFIERS; ++i) {
            address v = vm.addr(VERIFIER_PK0 + i);
            verifiers.push(v);
            pkOf[v] = VERIFIER_PK0 + i;
            _registerAndStake(v, STAKE);
        }
        _nextEpoch(); // the stakes above count in draws from here on
    }

    /// The settlement token; a test contract may return a hostile one.
    function _newToken() internal virtual returns (MockToken) {
        return new MockToken();
    }

    /// Rolls to the first block of the next epoch: stake changes made before count from there.
    function _nextEpoch() internal {
        vm.roll((vm.getBlockNumber() / EPOCH_BLOCKS + 1) * EPOCH_BLOCKS);
    }

    /// `who` withdraws its whole credit; returns what it received.
    function _withdraw(address who) internal returns (uint256 received) {
        uint256 before = token.balanceOf(who);
        vm.prank(who);
        escrow.withdraw();
        received = token.balanceOf(who) - before;
    }

    /// Active plus unstaking stake: everything of `who` that a slash or a penalty can take.
    function _held(address who) internal view returns (uint256) {
        (, uint128 s, uint128 u,,) = escrow.accounts(who);
        return uint256(s) + u;
    }

    /// Registers `count` accounts with keys `pk0`, `pk0 + 1`, ... staking `amount` each (the
    /// accounts an operator would fund to fill seats); stops when the pool is full.
    function _fillPool(uint256 pk0, uint256 amount) internal {
        for (uint256 i = 0; escrow.poolSize() < escrow.MAX_POOL(); ++i) {
            address a = vm.addr(pk0 + i);
            pkOf[a] = pk0 + i;
            _registerAndStake(a, amount);
        }
    }

    /// The escrow's parameters; a test contract may use others (another token's decimals).
    function _config() internal pure virtual returns (SietchEscrow.Config memory) {
        return SietchEscrow.Config({
            closeDelay: CLOSE_DELAY,
            challengeWindow: CHALLENGE,
            verdictWindow: VERDICT,
            unstakeDelay: UNSTAKE_DELAY,
            disputeBond: BOND,
            verifierFee: FEE,
            minStake: MIN_STAKE,
            minDeposit: MIN_DEPOSIT,
            epochBlocks: EPOCH_BLOCKS
        });
    }

    function _deploy(IERC20 t) internal returns (SietchEscrow) {
        return new SietchEscrow(t, _config());
    }

    function _registerAndStake(address who, uint256 amount) internal {
        _register(who, amount);
        vm.prank(who);
        escrow.stake(amount);
    }

    /// Registers `who` and gives it `amount` of tokens approved to the escrow, without staking.
    function _register(address who, uint256 amount) internal {
        token.mint(who, amount);
        vm.startPrank(who);
        escrow.register(keccak256(abi.encode("ed25519", who)), new bytes(64));
        token.approve(address(escrow), type(uint256).max);
        vm.stopPrank();
    }

    function _open(uint256 amount) internal returns (bytes32 id) {
        return _openTo(provider, amount);
    }

    function _openTo(address to, uint256 amount) internal returns (bytes32 id) {
        vm.startPrank(buyer);
        token.approve(address(escrow), type(uint256).max);
        id = escrow.openChannel(to, amount);
        vm.stopPrank();
    }

    function _sig(uint256 pk, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function _voucher(bytes32 channelId, uint256 cumulative) internal pure returns (SietchEscrow.Voucher memory) {
        return SietchEscrow.Voucher({channelId: channelId, cumulativeAmount: cumulative});
    }

    function _signVoucher(uint256 pk, bytes32 channelId, uint256 cumulative) internal view returns (bytes memory) {
        return _sig(pk, escrow.hashVoucher(_voucher(channelId, cumulative)));
    }

    function _claim(bytes32 channelId, uint256 cumulative) internal {
        escrow.claim(_voucher(channelId, cumulative), _signVoucher(BUYER_PK, channelId, cumulative));
    }

    /// Like `_claim`, but expects the claim to revert with `err` (signing happens first, because
    /// expectRevert applies to the next call).
    function _claimReverts(bytes32 channelId, uint256 cumulative, bytes memory err) internal {
        bytes memory sig = _signVoucher(BUYER_PK, channelId, cumulative);
        vm.expectRevert(err);
        escrow.claim(_voucher(channelId, cumulative), sig);
    }

    /// A ticket whose job starts where the channel's cursor is: the honest provider claimed the
    /// buyer's latest voucher first, so `cumulativeBefore` is what the channel has paid.
    function _ticket(bytes32 channelId, bytes32 jobId, uint256 maxAmount)
        internal
        view
        returns (SietchEscrow.Ticket memory)
    {
        (,,,,,, uint128 paid) = escrow.channels(channelId);
        return _ticketAt(channelId, jobId, maxAmount, paid);
    }

    function _ticketAt(bytes32 channelId, bytes32 jobId, uint256 maxAmount, uint256 cumulativeBefore)
        internal
        pure
        returns (SietchEscrow.Ticket memory)
    {
        return SietchEscrow.Ticket({
            jobId: jobId,
            specHash: keccak256(abi.encode("spec", jobId)),
            channelId: channelId,
            cumulativeBefore: cumulativeBefore,
            maxAmount: maxAmount,
            deadline: TICKET_DEADLINE,
            checkCommit: keccak256("secret"),
            // Prices no charge in these tests reaches (pricing has its own tests).
            pricePerGFuel: type(uint128).max,
            pricePerGpuSecond: 0
        });
    }

    function _result(bytes32 channelId, bytes32 jobId, bytes32 outputHash, uint256 amount)
        internal
        pure
        returns (SietchEscrow.ResultCommitment memory)
    {
        return SietchEscrow.ResultCommitment({
            jobId: jobId,
            specHash: keccak256(abi.encode("spec", jobId)),
            channelId: channelId,
            outputHash: outputHash,
            fuelUsed: 1234,
            gpuMillis: 56,
            amount: amount
        });
    }

    /// Claims a ticket for `jobId` charging `amount`, with the provider's output "good".
    function _claimTicket(bytes32 channelId, bytes32 jobId, uint256 amount) internal returns (bytes32) {
        return _claimTicketExpecting(channelId, jobId, amount, "");
    }

    /// Claims a ticket; when `err` is not empty, expects that revert instead.
    function _claimTicketExpecting(bytes32 channelId, bytes32 jobId, uint256 amount, bytes memory err)
        internal
        returns (bytes32)
    {
        return _claimTicketFor(_ticket(channelId, jobId, amount), amount, err);
    }

    /// Claims ticket `t` with a "good" result charging `amount`; when `err` is not empty, expects
    /// that revert instead.
    function _claimTicketFor(SietchEscrow.Ticket memory t, uint256 amount, bytes memory err)
        internal
        returns (bytes32)
    {
        return _claimTicketAs(PROVIDER_PK, t, amount, err);
    }

    /// The provider with key `pk` claims ticket `t` (on its own channel) with a "good" result.
    function _claimTicketAs(uint256 pk, SietchEscrow.Ticket memory t, uint256 amount, bytes memory err)
        internal
        returns (bytes32)
    {
        SietchEscrow.ResultCommitment memory r = _result(t.channelId, t.jobId, keccak256("good"), amount);
        bytes memory ts = _sig(BUYER_PK, escrow.hashTicket(t));
        bytes memory rs = _sig(pk, escrow.hashResult(r));
        address claimer = vm.addr(pk);
        if (err.length != 0) vm.expectRevert(err);
        vm.prank(claimer);
        return escrow.claimTicket(t, ts, r, rs);
    }

    function _verifierPk(address v) internal view returns (uint256 pk) {
        pk = pkOf[v];
        require(pk != 0, "no key for this account");
    }

    /// Disputes `id` as the buyer and draws its verifiers once the draw block is mined.
    function _disputeAndDraw(bytes32 id) internal returns (address[3] memory drawn) {
        vm.prank(buyer);
        escrow.dispute(id);
        return _draw(id);
    }

    /// Calls drawVerifiers in the block after the draw block, again if that block opened a new
    /// epoch (the draw re-arms then); stops once drawn, settled or still waiting for verifiers.
    function _draw(bytes32 id) internal returns (address[3] memory drawn) {
        for (uint256 i = 0; i < 3; ++i) {
            SietchEscrow.TicketRecord memory t = escrow.tickets(id);
            if (t.state != SietchEscrow.TicketState.Disputed) break;
            if (vm.getBlockNumber() <= t.drawBlock) vm.roll(t.drawBlock + 1);
            escrow.drawVerifiers(id);
        }
        drawn = escrow.tickets(id).verifiers;
    }

    /// Lets every round of a disputed ticket pass without a vote: draw, verdict deadline, resolve
    /// (redraw), `ROUNDS` times; the ticket ends undecided.
    function _noVoteRounds(bytes32 id) internal {
        for (uint256 r = 0; r < escrow.ROUNDS(); ++r) {
            _draw(id);
            vm.warp(escrow.tickets(id).deadline + 1);
            escrow.resolve(id);
        }
    }

    /// The drawn verifier `v` posts a commitment for `jobId` with `outputHash`.
    function _vote(bytes32 id, bytes32 jobId, address v, bytes32 outputHash) internal {
        _voteExpecting(id, jobId, v, outputHash, "");
    }

    /// Like `_vote`; when `err` is not empty, expects that revert instead.
    function _voteExpecting(bytes32 id, bytes32 jobId, address v, bytes32 outputHash, bytes memory err) internal {
        SietchEscrow.ResultCommitment memory r = _result(escrow.tickets(id).channelId, jobId, outputHash, 0);
        bytes memory sig = _sig(_verifierPk(v), escrow.hashResult(r));
        if (err.length != 0) vm.expectRevert(err);
        escrow.submitVerdict(id, r, sig);
    }
}
