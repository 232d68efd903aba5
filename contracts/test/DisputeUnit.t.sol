// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";

/// Unit tests of disputes: bond, draw, verdicts, resolution by majority, redraw rounds and
/// undecided; the attacks on them are in Disputes.t.sol.
contract DisputeTest is Base {
    bytes32 internal ch;
    bytes32 internal constant JOB = keccak256("job-1");

    function setUp() public override {
        super.setUp();
        ch = _open(100e18);
    }

    function test_dispute_reverts() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.Unauthorized.selector, address(this)));
        escrow.dispute(id);
        uint64 ends = uint64(block.timestamp) + CHALLENGE;
        vm.warp(ends + 1);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.ChallengeClosed.selector, ends));
        escrow.dispute(id);
        vm.expectRevert(
            abi.encodeWithSelector(SietchEscrow.WrongTicketState.selector, bytes32(0), SietchEscrow.TicketState.None)
        );
        escrow.dispute(bytes32(0));
    }

    function test_dispute_postsBond() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        uint256 before = token.balanceOf(buyer);
        vm.prank(buyer);
        vm.expectEmit();
        emit SietchEscrow.TicketDisputed(id, buyer, BOND, uint64(block.number) + 1, false);
        escrow.dispute(id);
        assertEq(before - token.balanceOf(buyer), BOND, "bond pulled");
        assertEq(escrow.totalBonds(), BOND, "bond booked");
        vm.expectRevert(
            abi.encodeWithSelector(SietchEscrow.WrongTicketState.selector, id, SietchEscrow.TicketState.Disputed)
        );
        escrow.finalizeTicket(id);
    }

    function test_drawVerifiers_distinctNeverPartiesStakeWeighted() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        vm.prank(buyer);
        escrow.dispute(id);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.DrawNotReady.selector, uint64(block.number) + 1));
        escrow.drawVerifiers(id);
        vm.roll(block.number + 2);
        escrow.drawVerifiers(id);
        SietchEscrow.TicketRecord memory t = escrow.tickets(id);
        assertEq(t.drawn, 3, "three drawn");
        for (uint256 i = 0; i < 3; ++i) {
            assertTrue(t.verifiers[i] != provider && t.verifiers[i] != buyer, "never a party");
            _verifierPk(t.verifiers[i]); // reverts unless a staked verifier
            for (uint256 j = 0; j < i; ++j) {
                assertTrue(t.verifiers[i] != t.verifiers[j], "distinct");
            }
        }
        vm.expectRevert(
            abi.encodeWithSelector(SietchEscrow.WrongTicketState.selector, id, SietchEscrow.TicketState.Drawn)
        );
        escrow.drawVerifiers(id);
    }

    function test_drawVerifiers_weightedByStake() public {
        // verifiers[0] holds ~96% of the eligible stake: it should be in nearly every draw.
        _registerAndStake(verifiers[0], 100_000e18);
        _nextEpoch();
        uint256 hits;
        for (uint256 k = 0; k < 10; ++k) {
            bytes32 id = _claimTicket(ch, keccak256(abi.encode("weighted", k)), 1e18);
            address[3] memory drawn = _disputeAndDraw(id);
            if (drawn[0] == verifiers[0] || drawn[1] == verifiers[0] || drawn[2] == verifiers[0]) ++hits;
        }
        assertTrue(hits >= 9, "the heavy staker is drawn almost always");
    }

    function test_resolve_splitVoteRedraws() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        address[3] memory drawn = _disputeAndDraw(id);
        _vote(id, JOB, drawn[0], keccak256("bad"));
        _vote(id, JOB, drawn[1], keccak256("good"));
        vm.warp(block.timestamp + VERDICT + 1);
        vm.expectEmit();
        emit SietchEscrow.VerifierPenalized(id, drawn[2], FEE);
        vm.expectEmit();
        emit SietchEscrow.Redrawn(id, 1, uint64(block.number) + 1);
        escrow.resolve(id);
        SietchEscrow.TicketRecord memory t = escrow.tickets(id);
        assertTrue(t.state == SietchEscrow.TicketState.Disputed, "drawn again");
        assertEq(t.round, 1, "round");
        assertEq(t.drawn + t.votesFor + t.votesAgainst, 0, "votes cleared");
        assertEq(_held(drawn[2]), STAKE - FEE, "absent verifier penalized");
        assertEq(_held(drawn[0]) + _held(drawn[1]), 2 * STAKE, "voters keep their stake");
        assertEq(escrow.balances(drawn[0]) + escrow.balances(drawn[1]), 0, "no fee without a majority");
        assertEq(escrow.balances(escrow.BURN_ADDRESS()), FEE, "penalty burned");
        // The new round decides as usual.
        drawn = _draw(id);
        _vote(id, JOB, drawn[0], keccak256("good"));
        _vote(id, JOB, drawn[1], keccak256("good"));
        escrow.resolve(id);
        assertEq(escrow.balances(provider), 10e18 + BOND - 2 * FEE, "provider right in round 1");
    }

    function test_drawVerifiers_rearmsWhenHashAgedOut() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        vm.prank(buyer);
        escrow.dispute(id);
        vm.roll(block.number + 300);
        vm.expectEmit();
        emit SietchEscrow.DrawRearmed(id, uint64(block.number) + 1, false);
        escrow.drawVerifiers(id);
        assertTrue(escrow.tickets(id).state == SietchEscrow.TicketState.Disputed, "still waiting");
        assertEq(escrow.tickets(id).drawBlock, block.number + 1, "moved to the next block");
        _draw(id);
        assertTrue(escrow.tickets(id).state == SietchEscrow.TicketState.Drawn, "drawn");
    }

    function test_submitVerdict_reverts() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        address[3] memory drawn = _disputeAndDraw(id);
        // A staked account that was not drawn.
        address outsider;
        for (uint256 i = 0; i < N_VERIFIERS; ++i) {
            address v = verifiers[i];
            if (v != drawn[0] && v != drawn[1] && v != drawn[2]) outsider = v;
        }
        _voteExpecting(
            id, JOB, outsider, keccak256("good"), abi.encodeWithSelector(SietchEscrow.NotAVerifier.selector, outsider)
        );
        _vote(id, JOB, drawn[0], keccak256("good"));
        _voteExpecting(
            id, JOB, drawn[0], keccak256("good"), abi.encodeWithSelector(SietchEscrow.NotAVerifier.selector, drawn[0])
        );
        _voteExpecting(
            id,
            keccak256("another job"),
            drawn[1],
            keccak256("good"),
            abi.encodeWithSelector(SietchEscrow.MismatchedResult.selector)
        );
        vm.warp(block.timestamp + VERDICT + 1);
        _voteExpecting(
            id,
            JOB,
            drawn[1],
            keccak256("good"),
            abi.encodeWithSelector(SietchEscrow.ChallengeClosed.selector, uint64(block.timestamp) - 1)
        );
    }

    function test_resolve_providerWrong_slashesRefundsPaysVerifiersBurnsRest() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        address[3] memory drawn = _disputeAndDraw(id);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.VerdictPending.selector, escrow.tickets(id).deadline));
        escrow.resolve(id);
        _vote(id, JOB, drawn[0], keccak256("bad"));
        _vote(id, JOB, drawn[1], keccak256("good")); // minority: unpaid
        _vote(id, JOB, drawn[2], keccak256("bad"));
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.ProviderWrong, 0, 10e18, BOND, 0);
        vm.expectEmit();
        emit SietchEscrow.Slashed(provider, id, STAKE, 2 * FEE, 10e18, STAKE - 10e18 - 2 * FEE, 0);
        escrow.resolve(id);
        // Buyer: ticket refunded + bond back + compensation equal to the ticket amount.
        assertEq(_withdraw(buyer), 10e18 + BOND + 10e18, "buyer made whole and compensated");
        assertEq(_withdraw(drawn[0]), FEE, "majority verifier paid");
        assertEq(_withdraw(drawn[2]), FEE, "majority verifier paid");
        assertEq(escrow.balances(drawn[1]), 0, "minority verifier unpaid");
        assertEq(escrow.balances(provider), 0, "provider unpaid");
        escrow.burn(); // permissionless
        assertEq(token.balanceOf(escrow.BURN_ADDRESS()), STAKE - 10e18 - 2 * FEE, "rest burned");
        (, uint128 s, uint128 u,, uint32 open) = escrow.accounts(provider);
        assertEq(uint256(s) + u + open + escrow.seatOf(provider), 0, "provider stake gone, no open ticket, out of pool");
        assertEq(escrow.totalBonds() + escrow.totalCredits(), 0, "bond released, credits paid out");
        (,,,, uint128 reserved, uint128 dep, uint128 paid) = escrow.channels(ch);
        assertEq(dep - paid - reserved, 90e18, "rest of channel untouched");
        assertEq(token.balanceOf(address(escrow)), 90e18 + N_VERIFIERS * STAKE, "channel and verifier stakes left");
    }

    function test_resolve_providerRight_bondToProviderAndVerifiers() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        address[3] memory drawn = _disputeAndDraw(id);
        _vote(id, JOB, drawn[0], keccak256("good"));
        _vote(id, JOB, drawn[1], keccak256("good"));
        vm.expectEmit();
        emit SietchEscrow.VerifierPaid(id, drawn[0], FEE);
        vm.expectEmit();
        emit SietchEscrow.VerifierPaid(id, drawn[1], FEE);
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.ProviderRight, 10e18, 0, 0, BOND - 2 * FEE);
        escrow.resolve(id);
        assertEq(_withdraw(provider), 10e18 + BOND - 2 * FEE, "ticket + bond less fees");
        assertEq(_withdraw(drawn[0]) + _withdraw(drawn[1]), 2 * FEE, "verifiers paid");
        assertEq(escrow.balances(drawn[2]), 0, "no vote, no fee");
        assertEq(_held(drawn[2]), STAKE, "no penalty once a majority decided");
        vm.expectRevert(
            abi.encodeWithSelector(SietchEscrow.WrongTicketState.selector, id, SietchEscrow.TicketState.Settled)
        );
        escrow.resolve(id);
    }

    /// No majority in any of the `ROUNDS` rounds: undecided refunds the buyer (reservation and
    /// bond) and never pays the provider.
    function test_resolve_undecidedAfterEveryRound_refundsBuyer() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        address[3] memory drawn = _disputeAndDraw(id);
        _vote(id, JOB, drawn[0], keccak256("bad")); // one vote is no majority
        vm.warp(block.timestamp + VERDICT + 1);
        escrow.resolve(id); // round 1
        _draw(id);
        vm.warp(block.timestamp + VERDICT + 1);
        escrow.resolve(id); // round 2
        _draw(id);
        vm.warp(block.timestamp + VERDICT + 1);
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.Undecided, 0, 10e18, BOND, 0);
        escrow.resolve(id);
        assertEq(_withdraw(buyer), 10e18 + BOND, "reservation and bond back");
        assertEq(escrow.balances(provider), 0, "provider not paid");
        (,,,, uint32 open) = escrow.accounts(provider);
        assertEq(open, 0, "ticket closed");
        assertEq(escrow.totalBonds(), 0, "bond released");
    }

    function test_draw_withTooFewVerifiersWaitsThenRefunds() public {
        // Everyone but the provider leaves the pool (from the next epoch on).
        for (uint256 i = 0; i < N_VERIFIERS; ++i) {
            vm.prank(verifiers[i]);
            escrow.requestUnstake(STAKE);
        }
        _nextEpoch();
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        vm.prank(buyer);
        escrow.dispute(id);
        vm.roll(block.number + 2);
        vm.expectEmit();
        emit SietchEscrow.DrawRearmed(id, uint64(block.number) + 1, true);
        escrow.drawVerifiers(id);
        assertEq(escrow.tickets(id).drawn, 0, "nobody to draw");
        vm.warp(block.timestamp + VERDICT + 1);
        _draw(id);
        assertTrue(escrow.tickets(id).state == SietchEscrow.TicketState.Settled, "settled undecided");
        assertEq(escrow.totalBonds(), 0, "bond released");
        assertEq(_withdraw(buyer), 10e18 + BOND, "buyer refunded");
        assertEq(escrow.balances(provider), 0, "ticket not paid");
    }
}
