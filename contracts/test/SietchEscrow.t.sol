// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";
import {VerifierPool} from "../src/VerifierPool.sol";

/// Unit tests: every function, every revert, the events an indexer relies on.
contract RegistryTest is Base {
    function test_constructor_rejectsBadConfig() public {
        SietchEscrow.Config memory c = _config();
        c.unstakeDelay = CHALLENGE; // must outlast challenge + verdict windows
        vm.expectRevert(SietchEscrow.BadConfig.selector);
        new SietchEscrow(IERC20(address(token)), c);
        c = _config();
        c.disputeBond = 3 * FEE - 1; // must cover three verifier fees
        vm.expectRevert(SietchEscrow.BadConfig.selector);
        new SietchEscrow(IERC20(address(token)), c);
        vm.expectRevert(SietchEscrow.BadConfig.selector);
        new SietchEscrow(IERC20(address(0)), _config());
        c = _config();
        c.epochBlocks = 1; // an epoch must hold the draw block and the draw
        vm.expectRevert(SietchEscrow.BadConfig.selector);
        new SietchEscrow(IERC20(address(token)), c);
        c.epochBlocks = 257; // longer than blockhash reaches
        vm.expectRevert(SietchEscrow.BadConfig.selector);
        new SietchEscrow(IERC20(address(token)), c);
    }

    function test_register_emitsAndRotates() public {
        address a = address(0xA);
        bytes memory proof = abi.encodePacked(bytes32(uint256(7)), bytes32(uint256(8)));
        vm.expectEmit();
        emit SietchEscrow.Registered(a, bytes32(uint256(1)), proof);
        vm.prank(a);
        escrow.register(bytes32(uint256(1)), proof);
        vm.prank(a);
        escrow.register(bytes32(uint256(2)), new bytes(64));
        (bytes32 key,,,,) = escrow.accounts(a);
        assertEq(key, bytes32(uint256(2)), "key rotated");
    }

    function test_register_revertsOnZeroKey() public {
        vm.expectRevert(SietchEscrow.ZeroKey.selector);
        escrow.register(bytes32(0), new bytes(64));
    }

    /// The proof is an ed25519 signature (64 bytes), verified by the nodes; anything else is
    /// refused here already.
    function test_register_revertsOnAProofThatIsNoSignature() public {
        address a = address(0xA);
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, a));
        escrow.register(bytes32(uint256(1)), new bytes(65));
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, a));
        escrow.register(bytes32(uint256(1)), "");
    }

    function test_stake_addsAndJoinsPool() public view {
        (, uint128 s,,,) = escrow.accounts(provider);
        assertEq(s, STAKE, "stake");
        assertEq(escrow.seatOf(provider), 1, "in pool");
        assertEq(escrow.poolSize(), 1 + N_VERIFIERS, "pool size");
        assertEq(token.balanceOf(address(escrow)), STAKE * (1 + N_VERIFIERS), "escrow holds stakes");
    }

    /// A stake counts in draws from the next epoch on, never in the epoch it was made in.
    function test_stake_countsFromNextEpoch() public {
        address a = address(0xA);
        uint64 e = escrow.currentEpoch();
        _register(a, 2 * MIN_STAKE);
        vm.prank(a);
        vm.expectEmit();
        emit VerifierPool.PoolMembership(a, true, e + 1);
        escrow.stake(MIN_STAKE);
        assertEq(escrow.weightAt(a, e), 0, "not this epoch");
        assertEq(escrow.weightAt(a, e + 1), MIN_STAKE, "next epoch");
        (address m,) = escrow.seatAt(N_VERIFIERS + 1, e);
        assertEq(m, address(0), "seat empty this epoch");
        _nextEpoch();
        vm.prank(a);
        escrow.stake(MIN_STAKE); // a top-up too waits for the next epoch
        (address m2, uint256 w) = escrow.seatAt(N_VERIFIERS + 1, e + 1);
        assertEq(m2, a, "seated");
        assertEq(w, MIN_STAKE, "old weight for the rest of the epoch");
        assertEq(escrow.weightAt(a, e + 2), 2 * MIN_STAKE, "top-up next epoch");
    }

    function test_stake_revertsWhenUnregistered() public {
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.NotRegistered.selector, address(this)));
        escrow.stake(1);
    }

    function test_stake_revertsOnZero() public {
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadAmount.selector, 0));
        escrow.stake(0);
    }

    function test_stake_belowMinimumStaysOutOfPool() public {
        address small = address(0x5A11);
        _registerAndStake(small, MIN_STAKE - 1);
        assertEq(escrow.seatOf(small), 0, "not in pool");
        assertEq(escrow.weightAt(small, escrow.currentEpoch() + 1), 0, "no weight");
    }

    function test_requestUnstake_leavesPoolAndLocks() public {
        vm.prank(provider);
        vm.expectEmit();
        emit SietchEscrow.UnstakeRequested(provider, STAKE, STAKE, uint64(block.timestamp) + UNSTAKE_DELAY);
        escrow.requestUnstake(STAKE);
        (, uint128 s, uint128 u, uint64 unlockAt,) = escrow.accounts(provider);
        assertEq(s, 0, "stake");
        assertEq(u, STAKE, "unstaking");
        assertEq(unlockAt, block.timestamp + UNSTAKE_DELAY, "unlock");
        assertEq(escrow.seatOf(provider), 0, "left pool");
        // The seat empties at the next epoch; this epoch's draws still see the old weight.
        uint64 e = escrow.currentEpoch();
        (address now_, uint256 w) = escrow.seatAt(0, e);
        (address next,) = escrow.seatAt(0, e + 1);
        assertEq(now_, provider, "seated this epoch");
        assertEq(w, STAKE, "weight this epoch");
        assertEq(next, address(0), "seat empty next epoch");
    }

    function test_requestUnstake_reverts() public {
        vm.startPrank(provider);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadAmount.selector, 0));
        escrow.requestUnstake(0);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.InsufficientStake.selector, STAKE + 1, STAKE));
        escrow.requestUnstake(STAKE + 1);
        vm.stopPrank();
    }

    function test_unstake_afterDelayPays() public {
        vm.prank(provider);
        escrow.requestUnstake(400e18);
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        vm.prank(provider);
        escrow.unstake();
        assertEq(token.balanceOf(provider), 400e18, "paid out");
    }

    function test_unstake_reverts() public {
        vm.prank(provider);
        vm.expectRevert(SietchEscrow.NothingToUnstake.selector);
        escrow.unstake();
        vm.prank(provider);
        escrow.requestUnstake(1e18);
        uint64 unlockAt = uint64(block.timestamp) + UNSTAKE_DELAY;
        vm.warp(unlockAt - 1);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.StillLocked.selector, unlockAt));
        escrow.unstake();
    }

    function test_unstake_blockedWhileTicketOpenOrDisputed() public {
        bytes32 ch = _open(100e18);
        bytes32 id = _claimTicket(ch, keccak256("job"), 10e18);
        vm.prank(provider);
        escrow.requestUnstake(STAKE);
        _disputeAndDraw(id);
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.OpenTickets.selector, 1));
        escrow.unstake();
    }
}

contract ChannelTest is Base {
    function test_openChannel_uniqueIdsPerOpen() public {
        vm.startPrank(buyer);
        token.approve(address(escrow), type(uint256).max);
        bytes32 expected = keccak256(abi.encode(block.chainid, address(escrow), buyer, provider, uint256(0)));
        vm.expectEmit();
        emit SietchEscrow.ChannelOpened(expected, buyer, provider, 5e18, 0);
        bytes32 a = escrow.openChannel(provider, 5e18);
        bytes32 b = escrow.openChannel(provider, 5e18);
        vm.stopPrank();
        assertEq(a, expected, "id");
        assertTrue(a != b, "reopen gives a new id");
        assertEq(escrow.channelNonce(buyer, provider), 2, "nonce");
        (address cb,, SietchEscrow.ChannelState st, address cp,, uint128 dep, uint128 paid) = escrow.channels(a);
        assertEq(cb, buyer, "buyer");
        assertEq(cp, provider, "provider");
        assertEq(dep, 5e18, "deposit");
        assertEq(paid, 0, "paid");
        assertTrue(st == SietchEscrow.ChannelState.Open, "open");
    }

    function test_openChannel_reverts() public {
        vm.startPrank(buyer);
        token.approve(address(escrow), type(uint256).max);
        vm.expectRevert(SietchEscrow.SelfChannel.selector);
        escrow.openChannel(buyer, 5e18);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.NotRegistered.selector, address(0xBEEF)));
        escrow.openChannel(address(0xBEEF), 5e18);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadAmount.selector, MIN_DEPOSIT - 1));
        escrow.openChannel(provider, MIN_DEPOSIT - 1);
        vm.stopPrank();
        // Registered but staked below the minimum: nothing at stake, no channel.
        address thin = address(0x7415);
        _registerAndStake(thin, MIN_STAKE - 1);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.ProviderNotStaked.selector, thin, MIN_STAKE - 1, MIN_STAKE));
        escrow.openChannel(thin, 5e18);
    }

    function test_topUp_addsDeposit() public {
        bytes32 ch = _open(5e18);
        vm.prank(buyer);
        vm.expectEmit();
        emit SietchEscrow.ChannelToppedUp(ch, 2e18, 7e18);
        escrow.topUp(ch, 2e18);
        (,,,,, uint128 dep,) = escrow.channels(ch);
        assertEq(dep, 7e18, "deposit");
    }

    function test_topUp_reverts() public {
        bytes32 ch = _open(5e18);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.UnknownChannel.selector, bytes32(0)));
        escrow.topUp(bytes32(0), 1);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.Unauthorized.selector, address(this)));
        escrow.topUp(ch, 1);
        vm.startPrank(buyer);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadAmount.selector, 0));
        escrow.topUp(ch, 0);
        escrow.startClose(ch);
        vm.expectRevert(
            abi.encodeWithSelector(SietchEscrow.WrongChannelState.selector, ch, SietchEscrow.ChannelState.Closing)
        );
        escrow.topUp(ch, 1);
        vm.stopPrank();
    }

    function test_claim_paysCumulativeDelta() public {
        bytes32 ch = _open(10e18);
        vm.expectEmit();
        emit SietchEscrow.VoucherClaimed(ch, provider, 3e18, 3e18, 3e18);
        _claim(ch, 3e18);
        _claim(ch, 5e18);
        assertEq(token.balanceOf(provider), 5e18, "provider got the cumulative");
        _claimReverts(ch, 4e18, abi.encodeWithSelector(SietchEscrow.NothingToClaim.selector, ch)); // stale
    }

    function test_claim_cappedByDepositThenRestAfterTopUp() public {
        bytes32 ch = _open(10e18);
        _claim(ch, 15e18);
        assertEq(token.balanceOf(provider), 10e18, "capped at deposit");
        vm.prank(buyer);
        escrow.topUp(ch, 10e18);
        _claim(ch, 15e18);
        assertEq(token.balanceOf(provider), 15e18, "never past cumulative");
    }

    function test_claim_revertsOnForeignSigner() public {
        bytes32 ch = _open(10e18);
        bytes memory sig = _signVoucher(PROVIDER_PK, ch, 1e18);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, buyer));
        escrow.claim(_voucher(ch, 1e18), sig);
    }

    function test_claim_revertsOnUnknownChannel() public {
        _claimReverts(
            bytes32(0),
            1,
            abi.encodeWithSelector(SietchEscrow.WrongChannelState.selector, bytes32(0), SietchEscrow.ChannelState.None)
        );
    }

    function test_claimBatch_oneTransferManyChannels() public {
        SietchEscrow.Voucher[] memory vs = new SietchEscrow.Voucher[](3);
        bytes[] memory sigs = new bytes[](3);
        for (uint256 i = 0; i < 3; ++i) {
            bytes32 ch = _open(10e18);
            vs[i] = _voucher(ch, (i + 1) * 1e18);
            sigs[i] = _signVoucher(BUYER_PK, ch, (i + 1) * 1e18);
        }
        escrow.claimBatch(vs, sigs);
        assertEq(token.balanceOf(provider), 6e18, "sum paid");
        // Replaying the same batch pays nothing more.
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.NothingToClaim.selector, vs[0].channelId));
        escrow.claimBatch(vs, sigs);
    }

    function test_claimBatch_skipsStaleEntries() public {
        bytes32 a = _open(10e18);
        bytes32 b = _open(10e18);
        _claim(a, 5e18);
        SietchEscrow.Voucher[] memory vs = new SietchEscrow.Voucher[](2);
        bytes[] memory sigs = new bytes[](2);
        (vs[0], sigs[0]) = (_voucher(a, 5e18), _signVoucher(BUYER_PK, a, 5e18));
        (vs[1], sigs[1]) = (_voucher(b, 2e18), _signVoucher(BUYER_PK, b, 2e18));
        escrow.claimBatch(vs, sigs);
        assertEq(token.balanceOf(provider), 7e18, "stale skipped, fresh paid");
    }

    function test_claimBatch_reverts() public {
        SietchEscrow.Voucher[] memory none = new SietchEscrow.Voucher[](0);
        vm.expectRevert(SietchEscrow.BadBatch.selector);
        escrow.claimBatch(none, new bytes[](0));
        bytes32 a = _open(10e18);
        SietchEscrow.Voucher[] memory one = new SietchEscrow.Voucher[](1);
        one[0] = _voucher(a, 1e18);
        vm.expectRevert(SietchEscrow.BadBatch.selector);
        escrow.claimBatch(one, new bytes[](2));
        // A channel to another provider in the same batch.
        address other = verifiers[0];
        vm.prank(buyer);
        bytes32 b = escrow.openChannel(other, 10e18);
        SietchEscrow.Voucher[] memory vs = new SietchEscrow.Voucher[](2);
        bytes[] memory sigs = new bytes[](2);
        (vs[0], sigs[0]) = (_voucher(a, 1e18), _signVoucher(BUYER_PK, a, 1e18));
        (vs[1], sigs[1]) = (_voucher(b, 1e18), _signVoucher(BUYER_PK, b, 1e18));
        vm.expectRevert(SietchEscrow.MixedProviders.selector);
        escrow.claimBatch(vs, sigs);
    }

    function test_startClose_byEitherParty() public {
        bytes32 a = _open(10e18);
        bytes32 b = _open(10e18);
        vm.prank(buyer);
        vm.expectEmit();
        emit SietchEscrow.CloseStarted(a, buyer, uint64(block.timestamp) + CLOSE_DELAY);
        escrow.startClose(a);
        vm.prank(provider);
        escrow.startClose(b);
        (, uint64 closesAt, SietchEscrow.ChannelState st,,,,) = escrow.channels(b);
        assertEq(closesAt, block.timestamp + CLOSE_DELAY, "closesAt");
        assertTrue(st == SietchEscrow.ChannelState.Closing, "closing");
    }

    function test_startClose_reverts() public {
        bytes32 a = _open(10e18);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.Unauthorized.selector, address(this)));
        escrow.startClose(a);
        vm.startPrank(buyer);
        escrow.startClose(a);
        vm.expectRevert(
            abi.encodeWithSelector(SietchEscrow.WrongChannelState.selector, a, SietchEscrow.ChannelState.Closing)
        );
        escrow.startClose(a);
        vm.stopPrank();
    }

    function test_finalizeClose_refundsRestAndStopsPaying() public {
        bytes32 ch = _open(10e18);
        _claim(ch, 3e18);
        vm.prank(buyer);
        escrow.startClose(ch);
        _claim(ch, 4e18); // the provider may still claim during the close delay
        uint64 closesAt = uint64(block.timestamp) + CLOSE_DELAY;
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.CloseNotDue.selector, closesAt));
        escrow.finalizeClose(ch);
        vm.warp(closesAt);
        uint256 before = token.balanceOf(buyer);
        vm.expectEmit();
        emit SietchEscrow.ChannelClosed(ch, 6e18);
        escrow.finalizeClose(ch);
        assertEq(token.balanceOf(buyer) - before, 6e18, "refund");
        _claimReverts(
            ch,
            10e18,
            abi.encodeWithSelector(SietchEscrow.WrongChannelState.selector, ch, SietchEscrow.ChannelState.Closed)
        );
        vm.expectRevert(
            abi.encodeWithSelector(SietchEscrow.WrongChannelState.selector, ch, SietchEscrow.ChannelState.Closed)
        );
        escrow.finalizeClose(ch);
        assertEq(token.balanceOf(provider), 4e18, "provider kept its claims");
    }
}

contract TicketTest is Base {
    bytes32 internal ch;
    bytes32 internal constant JOB = keccak256("job-1");

    function setUp() public override {
        super.setUp();
        ch = _open(100e18);
    }

    function test_claimTicket_reservesAndStartsWindow() public {
        bytes32 id = escrow.ticketId(ch, JOB);
        vm.expectEmit();
        emit SietchEscrow.TicketClaimed(
            id, ch, JOB, 10e18, keccak256("good"), 1234, uint64(block.timestamp) + CHALLENGE, 10e18, 10e18
        );
        assertEq(_claimTicket(ch, JOB, 10e18), id, "id");
        (,,,, uint128 reserved,,) = escrow.channels(ch);
        assertEq(reserved, 10e18, "reserved");
        SietchEscrow.TicketRecord memory t = escrow.tickets(id);
        assertTrue(t.state == SietchEscrow.TicketState.Claimed, "claimed");
        (,,,, uint32 open) = escrow.accounts(provider);
        assertEq(open, 1, "one open ticket locked in the provider's stake");
        // Reserved money is not claimable by a voucher.
        _claim(ch, 100e18);
        assertEq(token.balanceOf(provider), 90e18, "voucher leaves the reserve");
    }

    function test_claimTicket_reverts() public {
        SietchEscrow.Ticket memory t = _ticket(ch, JOB, 10e18);
        bytes memory ts = _sig(BUYER_PK, escrow.hashTicket(t));
        SietchEscrow.ResultCommitment memory r = _result(ch, JOB, keccak256("good"), 11e18);
        bytes memory overRs = _sig(PROVIDER_PK, escrow.hashResult(r));
        vm.startPrank(provider); // only the channel's provider may claim (see Disputes.t.sol)
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.OverMaxAmount.selector, 11e18, 10e18));
        escrow.claimTicket(t, ts, r, overRs);

        r = _result(ch, keccak256("other job"), keccak256("good"), 1e18);
        bytes memory rs = _sig(PROVIDER_PK, escrow.hashResult(r));
        vm.expectRevert(SietchEscrow.MismatchedResult.selector);
        escrow.claimTicket(t, ts, r, rs);

        r = _result(ch, JOB, keccak256("good"), 0);
        rs = _sig(PROVIDER_PK, escrow.hashResult(r));
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadAmount.selector, 0));
        escrow.claimTicket(t, ts, r, rs);

        r = _result(ch, JOB, keccak256("good"), 1e18);
        rs = _sig(PROVIDER_PK, escrow.hashResult(r));
        bytes memory wrongTs = _sig(PROVIDER_PK, escrow.hashTicket(t));
        bytes memory wrongRs = _sig(BUYER_PK, escrow.hashResult(r));
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, buyer));
        escrow.claimTicket(t, wrongTs, r, rs);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, provider));
        escrow.claimTicket(t, ts, r, wrongRs);

        escrow.claimTicket(t, ts, r, rs);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.TicketExists.selector, escrow.ticketId(ch, JOB)));
        escrow.claimTicket(t, ts, r, rs);
        vm.stopPrank();
    }

    function test_claimTicket_revertsWhenChannelCannotCover() public {
        _claim(ch, 95e18);
        _claimTicketExpecting(
            ch, JOB, 10e18, abi.encodeWithSelector(SietchEscrow.InsufficientChannelBalance.selector, 10e18, 5e18)
        );
    }

    function test_claimTicket_revertsOnClosedChannel() public {
        vm.prank(buyer);
        escrow.startClose(ch);
        vm.warp(block.timestamp + CLOSE_DELAY);
        escrow.finalizeClose(ch);
        _claimTicketExpecting(
            ch,
            JOB,
            10e18,
            abi.encodeWithSelector(SietchEscrow.WrongChannelState.selector, ch, SietchEscrow.ChannelState.Closed)
        );
    }

    function test_finalizeTicket_paysAfterWindowAndCountsTowardCumulative() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        uint64 ends = uint64(block.timestamp) + CHALLENGE;
        vm.warp(ends);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.ChallengeOpen.selector, ends));
        escrow.finalizeTicket(id);
        vm.warp(ends + 1);
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.Undisputed, 10e18, 0, 0, 0);
        vm.expectEmit();
        emit SietchEscrow.Credited(provider, 10e18, 10e18);
        escrow.finalizeTicket(id);
        assertEq(escrow.balances(provider), 10e18, "ticket credited");
        assertEq(escrow.totalCredits(), 10e18, "credits booked");
        vm.expectEmit();
        emit SietchEscrow.Withdrawn(provider, 10e18);
        assertEq(_withdraw(provider), 10e18, "ticket paid on withdraw");
        assertEq(escrow.totalCredits(), 0, "credits released");
        vm.prank(provider);
        vm.expectRevert(SietchEscrow.NothingToWithdraw.selector);
        escrow.withdraw();
        vm.expectRevert(
            abi.encodeWithSelector(SietchEscrow.WrongTicketState.selector, id, SietchEscrow.TicketState.Settled)
        );
        escrow.finalizeTicket(id);
        // The buyer's next cumulative voucher includes the ticket: nothing is paid twice.
        _claim(ch, 15e18);
        assertEq(token.balanceOf(provider), 15e18, "cumulative includes the ticket");
    }

    function test_claimTicket_refusesAmountAboveUint96() public {
        uint256 huge = uint256(type(uint96).max) + 1;
        _claimTicketExpecting(ch, JOB, huge, abi.encodeWithSelector(SietchEscrow.BadAmount.selector, huge));
    }

    /// A split vote is no majority: after the deadline the absent verifier loses `verifierFee` of
    /// its stake, nobody is paid, and the dispute is drawn again (round 1) from a new block.
    function test_ticketOnClosingChannel_settlesAfterFinalize() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        vm.prank(buyer);
        escrow.startClose(ch);
        vm.warp(block.timestamp + CLOSE_DELAY);
        uint256 before = token.balanceOf(buyer);
        escrow.finalizeClose(ch);
        assertEq(token.balanceOf(buyer) - before, 90e18, "reserve held back");
        escrow.finalizeTicket(id);
        assertEq(_withdraw(provider), 10e18, "ticket paid after close");
        assertEq(token.balanceOf(address(escrow)), STAKE * (1 + N_VERIFIERS), "only stakes left");
    }

    // ---------------------------------------------------------------- tickets and vouchers: a job is paid once

    /// Jobs on `ch`: job 1 is [0, 10] (paid by voucher 10), job 2 is [10, 17]; the buyer withholds
    /// job 2's voucher. Claims voucher 10 first, as an honest provider does before a ticket.
    function _job2Ticket() internal view returns (SietchEscrow.Ticket memory) {
        return _ticketAt(ch, JOB, 7e18, 10e18);
    }

    function _settleUndisputed(bytes32 id) internal {
        vm.warp(block.timestamp + CHALLENGE + 1);
        escrow.finalizeTicket(id);
    }

    function _paid() internal view returns (uint256 paid) {
        (,,,,,, paid) = escrow.channels(ch);
    }

    /// What the provider was paid: vouchers pay it directly, tickets credit it.
    function _earned() internal view returns (uint256) {
        return token.balanceOf(provider) + escrow.balances(provider);
    }

    /// Ticket first, then the buyer's voucher for the same job: the voucher pays nothing more, and
    /// after the channel closes the buyer has paid each job once.
    function test_ticketThenVoucher_jobPaidOnce() public {
        _claim(ch, 10e18);
        bytes32 id = _claimTicketFor(_job2Ticket(), 7e18, "");
        assertEq(escrow.tickets(id).amount, 7e18, "reserves the job");
        assertEq(escrow.tickets(id).cumulativeEnd, 17e18, "range end");
        _settleUndisputed(id);
        assertEq(_earned(), 17e18, "both jobs paid");
        assertEq(_paid(), 17e18, "cursor at the job's end");
        // The voucher that includes job 2 pays nothing more; a later one pays only the new job.
        _claimReverts(ch, 17e18, abi.encodeWithSelector(SietchEscrow.NothingToClaim.selector, ch));
        _claim(ch, 20e18);
        assertEq(_earned(), 20e18, "job 3 paid by the voucher, job 2 not again");
        uint256 buyerBefore = token.balanceOf(buyer);
        vm.prank(buyer);
        escrow.startClose(ch);
        vm.warp(block.timestamp + CLOSE_DELAY);
        escrow.finalizeClose(ch);
        assertEq(token.balanceOf(buyer) - buyerBefore, 80e18, "buyer paid 20 for 20 of work");
    }

    /// Voucher first (it covers job 2), then a ticket for job 2: refused, nothing is paid again.
    function test_voucherThenTicket_refused() public {
        _claim(ch, 17e18);
        bytes memory err = abi.encodeWithSelector(SietchEscrow.TicketAlreadyPaid.selector, 17e18, 17e18);
        _claimTicketFor(_job2Ticket(), 7e18, err);
        assertEq(_earned(), 17e18, "paid once");
    }

    /// A voucher that paid part of the job: the ticket reserves and pays only the rest.
    function test_voucherPaidPartOfTheJob_ticketPaysTheRest() public {
        _claim(ch, 14e18);
        bytes32 id = _claimTicketFor(_job2Ticket(), 7e18, "");
        (,,,, uint128 reserved,,) = escrow.channels(ch);
        assertEq(reserved, 3e18, "reserves only the unpaid part");
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.Undisputed, 3e18, 0, 0, 0);
        _settleUndisputed(id);
        assertEq(_earned(), 17e18, "job paid once");
        assertEq(_paid(), 17e18, "cursor at the job's end");
    }

    /// The buyer pays job 2 by voucher while its ticket is in the challenge window: the ticket
    /// then pays nothing, and its reservation goes back to the channel.
    function test_voucherDuringChallengeWindow_ticketPaysNothingMore() public {
        _claim(ch, 10e18);
        bytes32 id = _claimTicketFor(_job2Ticket(), 7e18, "");
        _claim(ch, 17e18);
        assertEq(_earned(), 17e18, "voucher paid job 2 from outside the reserve");
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.Undisputed, 0, 0, 0, 0);
        _settleUndisputed(id);
        assertEq(_earned(), 17e18, "ticket paid nothing more");
        (,,,, uint128 reserved, uint128 dep, uint128 paid) = escrow.channels(ch);
        assertEq(reserved, 0, "reserve released");
        assertEq(dep - paid, 83e18, "released into the channel");
        (,,,, uint32 open) = escrow.accounts(provider);
        assertEq(open, 0, "ticket closed");
    }

    /// Same, but the voucher paid only part of job 2 (the channel was short outside the reserve):
    /// the ticket pays the rest.
    function test_voucherDuringChallengeWindow_partial() public {
        bytes32 small = _open(12e18);
        _claim(small, 5e18);
        bytes32 id = _claimTicketFor(_ticketAt(small, JOB, 7e18, 5e18), 7e18, "");
        // The voucher owes 7 more, but nothing is outside the reserve.
        _claimReverts(small, 12e18, abi.encodeWithSelector(SietchEscrow.NothingToClaim.selector, small));
        vm.prank(buyer);
        escrow.topUp(small, 3e18);
        _claim(small, 12e18); // 3 from the top-up
        assertEq(_earned(), 8e18, "voucher paid 3 of job 2");
        _settleUndisputed(id);
        assertEq(_earned(), 12e18, "ticket paid the other 4");
        (,,,, uint128 reserved, uint128 dep, uint128 paid) = escrow.channels(small);
        assertEq(paid, 12e18, "cursor");
        assertEq(reserved, 0, "reserve released");
        assertEq(dep - paid, 3e18, "the ticket's unpaid 3 stay in the channel");
    }

    /// A dispute the provider loses refunds the whole reservation, whatever vouchers did meanwhile;
    /// the cursor does not move, so the buyer's later vouchers (which leave the job out) are right.
    function test_providerWrong_refundsReservation_cursorStays() public {
        _claim(ch, 10e18);
        bytes32 id = _claimTicketFor(_job2Ticket(), 7e18, "");
        address[3] memory drawn = _disputeAndDraw(id);
        _vote(id, JOB, drawn[0], keccak256("bad"));
        _vote(id, JOB, drawn[1], keccak256("bad"));
        escrow.resolve(id);
        assertEq(_paid(), 10e18, "cursor unchanged");
        assertEq(escrow.balances(buyer), 7e18 + BOND + 7e18, "reserve + bond + compensation");
        // Job 3 [10, 13]: the buyer's next voucher leaves job 2 out.
        _claim(ch, 13e18);
        assertEq(_earned(), 13e18, "job 1 and job 3");
    }

    /// A ticket settled after its channel closed gives back what it did not pay; nothing is stuck.
    function test_ticketOnClosedChannel_refundsUnpaidReserve() public {
        _claim(ch, 10e18);
        bytes32 id = _claimTicketFor(_job2Ticket(), 7e18, "");
        _claim(ch, 15e18); // the buyer paid 5 of job 2 by voucher
        vm.prank(buyer);
        escrow.startClose(ch);
        vm.warp(block.timestamp + CLOSE_DELAY);
        escrow.finalizeClose(ch);
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.Undisputed, 2e18, 5e18, 0, 0);
        escrow.finalizeTicket(id);
        assertEq(_earned(), 17e18, "job 2 paid once");
        assertEq(_withdraw(buyer), 5e18, "unpaid reserve back to the buyer");
        _withdraw(provider);
        assertEq(token.balanceOf(address(escrow)), STAKE * (1 + N_VERIFIERS), "only stakes left");
    }

    /// The provider must claim the vouchers up to `cumulativeBefore` first; then the same ticket works.
    function test_claimTicket_revertsBeforeVouchersReachCumulativeBefore() public {
        SietchEscrow.Ticket memory t = _job2Ticket();
        _claimTicketFor(t, 7e18, abi.encodeWithSelector(SietchEscrow.CumulativeNotReached.selector, 10e18, 0));
        _claim(ch, 8e18);
        _claimTicketFor(t, 7e18, abi.encodeWithSelector(SietchEscrow.CumulativeNotReached.selector, 10e18, 8e18));
        _claim(ch, 10e18);
        bytes32 id = _claimTicketFor(t, 7e18, "");
        _settleUndisputed(id);
        assertEq(_earned(), 17e18, "paid in full");
    }

    /// `deadline` is the last second the ticket may be claimed on chain.
    function test_claimTicket_revertsAfterDeadline() public {
        SietchEscrow.Ticket memory t = _ticket(ch, JOB, 10e18);
        vm.warp(uint256(TICKET_DEADLINE) + 1);
        _claimTicketFor(t, 10e18, abi.encodeWithSelector(SietchEscrow.TicketExpired.selector, TICKET_DEADLINE));
        vm.warp(TICKET_DEADLINE);
        _claimTicketFor(t, 10e18, "");
    }
}
