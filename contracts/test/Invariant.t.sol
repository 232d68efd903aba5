// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {EscrowHandler} from "./EscrowHandler.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";

/// Invariants over random sequences of every action (EscrowHandler.sol), with an honest
/// provider, a cheating provider, a lying verifier and a buyer that disputes as it likes.
contract InvariantTest is Base {
    uint256 internal constant CHEAT_PK = 0xC4EA7;
    EscrowHandler internal handler;

    function setUp() public override {
        super.setUp();
        _registerAndStake(vm.addr(CHEAT_PK), STAKE);
        _nextEpoch();
        uint256[] memory pks = new uint256[](2 + N_VERIFIERS);
        pks[0] = PROVIDER_PK;
        pks[1] = CHEAT_PK;
        for (uint256 i = 0; i < N_VERIFIERS; ++i) {
            pks[2 + i] = VERIFIER_PK0 + i;
        }
        handler = new EscrowHandler(escrow, token, BUYER_PK, pks);
        vm.prank(buyer);
        token.approve(address(escrow), type(uint256).max);
        handler.open(50e18, false); // a channel to each provider from the start: more runs reach disputes
        handler.open(50e18, true);
        targetContract(address(handler));
        bytes4[] memory sel = new bytes4[](23);
        sel[0] = EscrowHandler.open.selector;
        sel[1] = EscrowHandler.topUp.selector;
        sel[2] = EscrowHandler.claim.selector;
        sel[3] = EscrowHandler.startClose.selector;
        sel[4] = EscrowHandler.finalizeClose.selector;
        sel[5] = EscrowHandler.claimTicket.selector;
        sel[6] = EscrowHandler.finalizeTicket.selector;
        sel[7] = EscrowHandler.dispute.selector;
        sel[8] = EscrowHandler.draw.selector;
        sel[9] = EscrowHandler.vote.selector;
        sel[10] = EscrowHandler.resolve.selector;
        sel[11] = EscrowHandler.requestUnstake.selector;
        sel[12] = EscrowHandler.unstake.selector;
        sel[13] = EscrowHandler.restake.selector;
        sel[14] = EscrowHandler.joinPool.selector;
        sel[15] = EscrowHandler.withdraw.selector;
        sel[16] = EscrowHandler.burn.selector;
        sel[17] = EscrowHandler.warp.selector;
        sel[18] = EscrowHandler.roll.selector;
        sel[19] = EscrowHandler.dispute.selector; // tickets and disputes twice as likely: under test
        sel[20] = EscrowHandler.claimTicket.selector;
        sel[21] = EscrowHandler.disputeUndelivered.selector;
        sel[22] = EscrowHandler.disputeUndelivered.selector;
        targetSelector(FuzzSelector(address(handler), sel));
    }

    /// The handler really reaches every state: a fixed walk through it settles a dispute of the
    /// honest provider and one of the cheat, so the random runs below are not vacuous.
    function test_handlerReachesDisputeSettlement() public {
        address cheat = vm.addr(CHEAT_PK);
        handler.claimTicket(0, 5e18, 0, 0); // channel 0 (to the honest provider), channel 1 (to the cheat)
        handler.claimTicket(1, 5e18, 0, 0);
        assertEq(handler.ticketCount(), 2, "tickets claimed");
        handler.dispute(0);
        handler.dispute(1);
        handler.draw(0);
        handler.draw(1);
        for (uint256 t = 0; t < 2; ++t) {
            assertTrue(escrow.tickets(handler.ticketIds(t)).state == SietchEscrow.TicketState.Drawn, "drawn");
            for (uint256 v = 0; v < 3; ++v) {
                handler.vote(t, v, false);
            }
        }
        handler.resolve(1);
        assertTrue(escrow.tickets(handler.ticketIds(1)).state == SietchEscrow.TicketState.Settled, "cheat settled");
        assertTrue(_held(cheat) < STAKE, "the wrong result was slashed");
        assertEq(handler.cheatDisputesSettled(), 1, "counted");
        handler.settleAll();
        assertTrue(escrow.tickets(handler.ticketIds(0)).state == SietchEscrow.TicketState.Settled, "settled");
        assertEq(_held(provider), STAKE, "the honest provider kept its stake");
        assertEq(handler.violations(), 0, "no violation");
        invariant_tokensConserved();
        invariant_creditsAddUp();
        afterInvariant();
    }

    /// The same walk with undelivered disputes: the honest provider is found right and pays the
    /// verifiers from its ticket (the buyer gets its bond back); the cheat is slashed as usual.
    function test_handlerReachesUndeliveredSettlement() public {
        address cheat = vm.addr(CHEAT_PK);
        handler.claimTicket(0, 20e18, 0, 0);
        handler.claimTicket(1, 20e18, 0, 0);
        handler.disputeUndelivered(0);
        handler.disputeUndelivered(1);
        handler.draw(0);
        handler.draw(1);
        for (uint256 t = 0; t < 2; ++t) {
            SietchEscrow.TicketRecord memory r = escrow.tickets(handler.ticketIds(t));
            assertTrue(r.undelivered, "undelivered");
            assertTrue(r.state == SietchEscrow.TicketState.Drawn, "drawn");
            for (uint256 v = 0; v < 3; ++v) {
                handler.vote(t, v, false);
            }
        }
        handler.resolve(0);
        handler.resolve(1);
        assertEq(handler.undeliveredRightSettled(), 1, "the honest provider was found right");
        assertEq(handler.undeliveredOtherSettled(), 1, "the cheat was found wrong");
        assertEq(handler.honestDisputesPaid(), 1, "the honest ticket paid");
        uint256 fees = escrow.balances(provider) == 20e18 - 2 * FEE ? 2 * FEE : 3 * FEE;
        assertEq(escrow.balances(provider), 20e18 - fees, "ticket less the fees");
        assertTrue(_held(cheat) < STAKE, "the wrong result was slashed");
        assertEq(_held(provider), STAKE, "the honest provider kept its stake");
        assertEq(handler.violations(), 0, "no violation");
        handler.settleAll();
        invariant_tokensConserved();
        invariant_creditsAddUp();
        afterInvariant();
    }

    function _stakes() internal view returns (uint256 total) {
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            total += _held(handler.actors(i));
        }
    }

    /// The contract holds exactly what its books say: open channels, stakes, bonds and credits.
    function invariant_tokensConserved() public view {
        uint256 books = escrow.totalBonds() + escrow.totalCredits() + _stakes();
        for (uint256 i = 0; i < handler.channelCount(); ++i) {
            (,,,,, uint128 dep, uint128 paid) = escrow.channels(handler.channelIds(i));
            books += dep - paid;
        }
        assertEq(token.balanceOf(address(escrow)), books, "balance == channels + stakes + bonds + credits");
        assertEq(escrow.totalStaked(), _stakes(), "totalStaked == every stake and unstaking");
    }

    /// `totalCredits` is the sum of what every account may withdraw (burns included).
    function invariant_creditsAddUp() public view {
        uint256 sum = escrow.balances(buyer) + escrow.balances(escrow.BURN_ADDRESS());
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            sum += escrow.balances(handler.actors(i));
        }
        assertEq(escrow.totalCredits(), sum, "credits add up");
    }

    /// Whatever the buyer disputes and the liar votes, the honest provider's stake moves only by
    /// its own stakes and unstakes: it is never slashed nor penalized.
    function invariant_honestProviderNeverSlashed() public view {
        assertEq(_held(handler.honest()), handler.honestIn() - handler.honestOut(), "honest stake untouched");
    }

    /// Vouchers never pay past the highest cumulative the buyer signed (tickets count on top).
    function invariant_voucherNeverPaysPastCumulative() public view {
        for (uint256 i = 0; i < handler.channelCount(); ++i) {
            bytes32 ch = handler.channelIds(i);
            (,,,,, uint128 dep, uint128 paid) = escrow.channels(ch);
            assertLe(paid, handler.maxSigned(ch) + handler.ticketPaid(ch), "paid <= signed + tickets");
            assertLe(paid, dep, "paid <= deposit");
        }
    }

    /// Nothing is paid twice across tickets and vouchers: what a channel paid its provider never
    /// goes past the part of the cumulative line that claimed vouchers and paying tickets cover,
    /// and it is exactly what the provider received from the channel.
    function invariant_nothingPaidTwice() public view {
        for (uint256 i = 0; i < handler.channelCount(); ++i) {
            bytes32 ch = handler.channelIds(i);
            (,,,,,, uint128 paid) = escrow.channels(ch);
            assertLe(paid, handler.covered(ch), "paid <= covered by vouchers and tickets");
            assertEq(paid, handler.received(ch), "paid == received by the provider");
        }
    }

    /// A finalized channel pays nothing more, except tickets claimed before it closed.
    function invariant_finalizedChannelPaysNothingMore() public view {
        for (uint256 i = 0; i < handler.channelCount(); ++i) {
            bytes32 ch = handler.channelIds(i);
            if (!handler.closed(ch)) continue;
            (,,,,,, uint128 paid) = escrow.channels(ch);
            assertEq(paid, handler.paidAtClose(ch) + handler.ticketPaidAfterClose(ch), "closed channel paid more");
        }
    }

    /// Nothing was paid twice or wrongly along the way, and no wrong result won a dispute.
    function invariant_noViolations() public view {
        if (handler.violations() != 0) fail(handler.lastViolation());
    }

    /// Every deadline leaves the money claimable: after each run, letting every window pass and
    /// calling every permissionless exit settles every ticket; then everyone withdraws its credit,
    /// the escrow holds exactly the stakes, and once everyone unstakes it is empty.
    function afterInvariant() public {
        // How far this run got (printed with -vv): states reached before the drain.
        uint256[5] memory states;
        for (uint256 i = 0; i < handler.ticketCount(); ++i) {
            states[uint256(escrow.tickets(handler.ticketIds(i)).state)] += 1;
        }
        emit log_named_uint(
            "tickets claimed/disputed/drawn/settled", states[1] * 1e9 + states[2] * 1e6 + states[3] * 1e3 + states[4]
        );
        handler.settleAll();
        emit log_named_uint(
            "disputes: of the cheat settled, of the honest provider paid",
            handler.cheatDisputesSettled() * 1e3 + handler.honestDisputesPaid()
        );
        emit log_named_uint(
            "undelivered disputes: provider right, wrong or undecided",
            handler.undeliveredRightSettled() * 1e3 + handler.undeliveredOtherSettled()
        );
        invariant_tokensConserved();
        invariant_creditsAddUp();
        invariant_honestProviderNeverSlashed();
        invariant_nothingPaidTwice();
        for (uint256 i = 0; i < handler.channelCount(); ++i) {
            bytes32 ch = handler.channelIds(i);
            (,, SietchEscrow.ChannelState st,,,,) = escrow.channels(ch);
            if (st == SietchEscrow.ChannelState.Open) {
                vm.prank(buyer);
                escrow.startClose(ch);
            }
        }
        vm.warp(block.timestamp + CLOSE_DELAY);
        for (uint256 i = 0; i < handler.channelCount(); ++i) {
            bytes32 ch = handler.channelIds(i);
            (,, SietchEscrow.ChannelState st,,,,) = escrow.channels(ch);
            if (st == SietchEscrow.ChannelState.Closing) escrow.finalizeClose(ch);
        }
        if (escrow.balances(buyer) != 0) _withdraw(buyer);
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            address a = handler.actors(i);
            if (escrow.balances(a) != 0) _withdraw(a);
        }
        if (escrow.balances(escrow.BURN_ADDRESS()) != 0) escrow.burn();
        assertEq(escrow.totalCredits() + escrow.totalBonds(), 0, "every credit withdrawn, every bond released");
        assertEq(token.balanceOf(address(escrow)), _stakes(), "the escrow holds exactly the stakes");
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            address a = handler.actors(i);
            (, uint128 s,,,) = escrow.accounts(a);
            if (s != 0) {
                vm.prank(a);
                escrow.requestUnstake(s);
            }
        }
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            address a = handler.actors(i);
            (,, uint128 u,,) = escrow.accounts(a);
            if (u != 0) {
                vm.prank(a);
                escrow.unstake();
            }
        }
        assertEq(token.balanceOf(address(escrow)), 0, "everything was claimable");
        assertEq(escrow.totalStaked(), 0, "and nothing is staked");
        if (handler.violations() != 0) fail(handler.lastViolation());
    }
}
