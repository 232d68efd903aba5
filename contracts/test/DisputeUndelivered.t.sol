// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";

/// Shared by the unit and fuzz tests of `disputeUndelivered`: the buyer says it never received
/// the output. If the provider is found right, the majority verifiers are paid from the ticket's
/// pay first (the bond only covers what the pay cannot) and the rest of the bond goes back to the
/// buyer; wrong and undecided settle exactly as a plain `dispute`.
abstract contract UndeliveredBase is Base {
    bytes32 internal constant JOB = keccak256("undelivered job");
    bytes32 internal constant GOOD = keccak256("good");
    /// What an honest verifier signs when the provider never gave it the output.
    bytes32 internal constant NOT_DELIVERED = bytes32(0);

    bytes32 internal ch;
    bytes32[] internal chans;

    function setUp() public virtual override {
        super.setUp();
        ch = _open(100e18);
        chans.push(ch);
    }

    /// Disputes `id` as undelivered (as the buyer) and draws its verifiers.
    function _undeliveredAndDraw(bytes32 id) internal returns (address[3] memory) {
        vm.prank(buyer);
        escrow.disputeUndelivered(id);
        return _draw(id);
    }

    /// The first `n` drawn verifiers vote `outputHash`; then anyone resolves.
    function _voteAndResolve(bytes32 id, address[3] memory drawn, uint256 n, bytes32 outputHash) internal {
        for (uint256 i = 0; i < n; ++i) {
            _vote(id, JOB, drawn[i], outputHash);
        }
        escrow.resolve(id);
    }

    function _verifierCredits(address[3] memory drawn) internal view returns (uint256 sum) {
        for (uint256 i = 0; i < 3; ++i) {
            sum += escrow.balances(drawn[i]);
        }
    }

    /// balance == sum(deposit - paid) + stakes + bonds + credits.
    function _assertConserved() internal view {
        uint256 books = escrow.totalBonds() + escrow.totalCredits() + _held(provider);
        for (uint256 i = 0; i < verifiers.length; ++i) {
            books += _held(verifiers[i]);
        }
        for (uint256 i = 0; i < chans.length; ++i) {
            (,,,,, uint128 dep, uint128 paid) = escrow.channels(chans[i]);
            books += dep - paid;
        }
        assertEq(token.balanceOf(address(escrow)), books, "tokens conserved");
    }
}

/// Unit tests of `disputeUndelivered`.
contract DisputeUndeliveredTest is UndeliveredBase {
    // ---------------------------------------------------------------- opening the dispute

    /// (e) The event says `undelivered`; the bond is pulled and booked as for `dispute`.
    function test_disputeUndelivered_emitsAndPostsBond() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        uint256 before = token.balanceOf(buyer);
        vm.expectEmit();
        emit SietchEscrow.TicketDisputed(id, buyer, BOND, uint64(block.number) + 1, true);
        vm.prank(buyer);
        escrow.disputeUndelivered(id);
        SietchEscrow.TicketRecord memory t = escrow.tickets(id);
        assertTrue(t.undelivered, "marked undelivered");
        assertTrue(t.state == SietchEscrow.TicketState.Disputed, "disputed");
        assertEq(t.drawBlock, block.number + 1, "drawn from the next block");
        assertEq(t.deadline, block.timestamp + VERDICT, "draw waits a verdict window");
        assertEq(before - token.balanceOf(buyer), BOND, "bond pulled");
        assertEq(escrow.totalBonds(), BOND, "bond booked");
        _assertConserved();
        // A plain dispute of another ticket is not marked.
        bytes32 other = _claimTicket(ch, keccak256("other job"), 1e18);
        vm.expectEmit();
        emit SietchEscrow.TicketDisputed(other, buyer, BOND, uint64(block.number) + 1, false);
        vm.prank(buyer);
        escrow.dispute(other);
        assertTrue(!escrow.tickets(other).undelivered, "plain dispute not marked");
    }

    /// (d) Only the channel's buyer, only a claimed ticket, only within the challenge window.
    function test_disputeUndelivered_reverts() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.Unauthorized.selector, address(this)));
        escrow.disputeUndelivered(id);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.Unauthorized.selector, provider));
        escrow.disputeUndelivered(id);
        vm.prank(verifiers[0]);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.Unauthorized.selector, verifiers[0]));
        escrow.disputeUndelivered(id);
        vm.expectRevert(
            abi.encodeWithSelector(SietchEscrow.WrongTicketState.selector, bytes32(0), SietchEscrow.TicketState.None)
        );
        vm.prank(buyer);
        escrow.disputeUndelivered(bytes32(0));
        uint64 ends = uint64(block.timestamp) + CHALLENGE;
        vm.warp(ends + 1);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.ChallengeClosed.selector, ends));
        escrow.disputeUndelivered(id);
        assertEq(escrow.totalBonds(), 0, "no bond taken");
        // After the window the ticket finalizes as usual; a settled ticket cannot be disputed.
        escrow.finalizeTicket(id);
        vm.prank(buyer);
        vm.expectRevert(
            abi.encodeWithSelector(SietchEscrow.WrongTicketState.selector, id, SietchEscrow.TicketState.Settled)
        );
        escrow.disputeUndelivered(id);
    }

    /// (d) The last second of the window still counts; a ticket is disputed once, either way.
    function test_disputeUndelivered_atWindowEnd_thenNoSecondDispute() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        vm.warp(block.timestamp + CHALLENGE);
        vm.prank(buyer);
        escrow.disputeUndelivered(id);
        bytes memory again =
            abi.encodeWithSelector(SietchEscrow.WrongTicketState.selector, id, SietchEscrow.TicketState.Disputed);
        vm.prank(buyer);
        vm.expectRevert(again);
        escrow.disputeUndelivered(id);
        vm.prank(buyer);
        vm.expectRevert(again);
        escrow.dispute(id);
        assertEq(escrow.totalBonds(), BOND, "one bond");
    }

    // ---------------------------------------------------------------- provider right

    /// (a) Two verifiers agree: they are paid from the ticket, the buyer gets its whole bond back,
    /// the provider gets the ticket less the two fees and nothing of the bond.
    function test_undelivered_providerRight_verifiersPaidFromTicket_bondBack() public {
        bytes32 id = _claimTicket(ch, JOB, 20e18);
        address[3] memory drawn = _undeliveredAndDraw(id);
        _vote(id, JOB, drawn[0], GOOD);
        _vote(id, JOB, drawn[1], GOOD);
        vm.expectEmit();
        emit SietchEscrow.VerifierPaid(id, drawn[0], FEE);
        vm.expectEmit();
        emit SietchEscrow.VerifierPaid(id, drawn[1], FEE);
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.ProviderRight, 20e18 - 2 * FEE, 0, BOND, 0);
        escrow.resolve(id);
        assertEq(escrow.balances(buyer), BOND, "whole bond back");
        assertEq(escrow.balances(provider), 20e18 - 2 * FEE, "ticket less the fees");
        assertEq(escrow.balances(drawn[0]) + escrow.balances(drawn[1]), 2 * FEE, "majority paid");
        assertEq(escrow.balances(drawn[2]), 0, "no vote, no fee");
        assertEq(_held(provider), STAKE, "provider not slashed");
        assertEq(escrow.totalBonds(), 0, "bond released");
        (,,,, uint128 reserved, uint128 dep, uint128 paid) = escrow.channels(ch);
        assertEq(paid, 20e18, "the channel paid the ticket's whole range");
        assertEq(dep - paid - reserved, 80e18, "rest of the channel untouched");
        _assertConserved();
        assertEq(_withdraw(buyer), BOND, "buyer withdraws the bond");
        assertEq(_withdraw(provider), 20e18 - 2 * FEE, "provider withdraws");
        _assertConserved();
    }

    /// (a) All three agree: `_payVerifiers` pays everyone in agreeMask, so three fees come off.
    function test_undelivered_providerRight_allThreeAgree_threeFeesFromTicket() public {
        bytes32 id = _claimTicket(ch, JOB, 20e18);
        address[3] memory drawn = _undeliveredAndDraw(id);
        _vote(id, JOB, drawn[0], GOOD);
        _vote(id, JOB, drawn[1], GOOD);
        _vote(id, JOB, drawn[2], GOOD); // still open: resolve was not called yet
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.ProviderRight, 20e18 - 3 * FEE, 0, BOND, 0);
        escrow.resolve(id);
        assertEq(escrow.balances(provider), 20e18 - 3 * FEE, "ticket less three fees");
        assertEq(escrow.balances(buyer), BOND, "whole bond back");
        for (uint256 i = 0; i < 3; ++i) {
            assertEq(escrow.balances(drawn[i]), FEE, "every agreeing verifier paid");
        }
        _assertConserved();
    }

    /// (a) The same ticket, the same verdict, disputed both ways: a plain dispute pays the provider
    /// the ticket and the bond less the fees (the buyer pays the verifiers); an undelivered one
    /// pays it the ticket less the fees and returns the bond (the provider pays them). Exactly the
    /// bond moves from provider to buyer; the verifiers are paid the same.
    function test_undelivered_vsPlainDispute_costsMoveToProvider() public {
        bytes32 id = _claimTicket(ch, JOB, 20e18);
        uint256 start = vm.snapshotState();

        vm.prank(buyer);
        escrow.dispute(id);
        address[3] memory drawn = _draw(id);
        _voteAndResolve(id, drawn, 2, GOOD);
        uint256 providerPlain = escrow.balances(provider);
        uint256 buyerPlain = escrow.balances(buyer);
        uint256 feesPlain = _verifierCredits(drawn);
        _assertConserved();
        vm.revertToState(start);

        drawn = _undeliveredAndDraw(id);
        _voteAndResolve(id, drawn, 2, GOOD);
        uint256 providerUndelivered = escrow.balances(provider);
        uint256 buyerUndelivered = escrow.balances(buyer);
        uint256 feesUndelivered = _verifierCredits(drawn);
        _assertConserved();

        assertEq(providerPlain, 20e18 + BOND - 2 * FEE, "plain: provider gets ticket + bond - fees");
        assertEq(buyerPlain, 0, "plain: buyer loses its bond");
        assertEq(providerUndelivered, 20e18 - 2 * FEE, "undelivered: provider gets ticket - fees");
        assertEq(buyerUndelivered, BOND, "undelivered: buyer gets its bond back");
        assertEq(feesPlain, 2 * FEE, "plain: two fees");
        assertEq(feesUndelivered, feesPlain, "verifiers paid the same either way");
        assertEq(providerPlain - providerUndelivered, BOND, "the provider gives up exactly the bond");
        assertEq(buyerUndelivered - buyerPlain, BOND, "the buyer keeps exactly the bond");
    }

    /// (a) A ticket smaller than the fees: the pay covers what it can, the bond the rest; the
    /// provider is credited nothing.
    function test_undelivered_providerRight_payBelowFees_bondCoversTheRest() public {
        bytes32 id = _claimTicket(ch, JOB, 7e18); // two fees are 10e18
        address[3] memory drawn = _undeliveredAndDraw(id);
        _vote(id, JOB, drawn[0], GOOD);
        _vote(id, JOB, drawn[1], GOOD);
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.ProviderRight, 0, 0, BOND - 3e18, 0);
        escrow.resolve(id);
        assertEq(escrow.balances(provider), 0, "provider credited nothing");
        assertEq(escrow.balances(buyer), BOND - 3e18, "bond less what the ticket could not cover");
        assertEq(_verifierCredits(drawn), 2 * FEE, "verifiers paid in full");
        (,,,,,, uint128 paid) = escrow.channels(ch);
        assertEq(paid, 7e18, "the channel paid the ticket's range (to the verifiers)");
        _assertConserved();
    }

    /// (b) Vouchers paid the ticket's whole range during the dispute (pay == 0): the fees come
    /// from the bond, the buyer gets the bond less the fees, the provider nothing more.
    function test_undelivered_providerRight_vouchersPaidRange_feesFromBond() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        address[3] memory drawn = _undeliveredAndDraw(id);
        uint256 providerTokens = token.balanceOf(provider);
        _claim(ch, 10e18); // the buyer's voucher arrives: it pays the job directly
        assertEq(token.balanceOf(provider) - providerTokens, 10e18, "voucher paid the job");
        _vote(id, JOB, drawn[0], GOOD);
        _vote(id, JOB, drawn[1], GOOD);
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.ProviderRight, 0, 0, BOND - 2 * FEE, 0);
        escrow.resolve(id);
        assertEq(escrow.balances(provider), 0, "nothing more for the provider");
        assertEq(escrow.balances(buyer), BOND - 2 * FEE, "bond less the fees");
        assertEq(_verifierCredits(drawn), 2 * FEE, "verifiers paid from the bond");
        (,,,, uint128 reserved, uint128 dep, uint128 paid) = escrow.channels(ch);
        assertEq(paid, 10e18, "cursor where the voucher left it");
        assertEq(reserved, 0, "reservation released");
        assertEq(dep - paid, 90e18, "nothing paid twice");
        _assertConserved();
    }

    /// (b) A voucher paid part of the range: the rest of the pay goes to the fees first, the bond
    /// covers the remainder.
    function test_undelivered_providerRight_voucherPaidPart_payThenBond() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        address[3] memory drawn = _undeliveredAndDraw(id);
        _claim(ch, 7e18); // pay left: 3e18 of the 10e18 of fees
        _voteAndResolve(id, drawn, 2, GOOD);
        assertEq(escrow.balances(provider), 0, "provider: pay went to the fees");
        assertEq(escrow.balances(buyer), BOND - 7e18, "bond less what the pay did not cover");
        assertEq(_verifierCredits(drawn), 2 * FEE, "verifiers paid");
        _assertConserved();
    }

    /// (b) On a channel closed during the dispute, the part of the reservation the ticket does not
    /// pay goes back to the buyer (`refund`), on top of the bond less the fees the pay left.
    function test_undelivered_providerRight_closedChannel_refundAndBond() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        vm.prank(buyer);
        escrow.disputeUndelivered(id);
        vm.prank(buyer);
        escrow.startClose(ch);
        _claim(ch, 4e18); // the voucher paid 4e18 of the range: the ticket pays 6e18
        vm.warp(block.timestamp + CLOSE_DELAY);
        escrow.finalizeClose(ch);
        address[3] memory drawn = _draw(id);
        _vote(id, JOB, drawn[0], GOOD);
        _vote(id, JOB, drawn[1], GOOD);
        // pay 6e18 covers 6 of the 10 of fees; the bond 4; refund 10 - 6 = 4.
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.ProviderRight, 0, 4e18, BOND - 4e18, 0);
        escrow.resolve(id);
        assertEq(escrow.balances(buyer), 4e18 + BOND - 4e18, "refund + bond less fees");
        assertEq(escrow.balances(provider), 0, "provider: pay went to the fees");
        (,,,, uint128 reserved, uint128 dep, uint128 paid) = escrow.channels(ch);
        assertEq(uint256(dep) - paid + reserved, 0, "closed channel empty");
        _assertConserved();
    }

    // ---------------------------------------------------------------- provider wrong, undecided

    /// (c) The verifiers never got the output and sign the "not delivered" marker: the provider is
    /// slashed and the buyer refunded and compensated, exactly as after a plain dispute.
    function test_undelivered_providerWrong_slashedLikeDispute() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        uint256 start = vm.snapshotState();

        vm.prank(buyer);
        escrow.dispute(id);
        address[3] memory drawn = _draw(id);
        _voteAndResolve(id, drawn, 2, NOT_DELIVERED);
        uint256 buyerPlain = escrow.balances(buyer);
        uint256 burnedPlain = escrow.balances(escrow.BURN_ADDRESS());
        vm.revertToState(start);

        drawn = _undeliveredAndDraw(id);
        _vote(id, JOB, drawn[0], NOT_DELIVERED);
        _vote(id, JOB, drawn[1], GOOD); // minority: unpaid
        _vote(id, JOB, drawn[2], NOT_DELIVERED);
        vm.expectEmit();
        emit SietchEscrow.TicketSettled(id, SietchEscrow.Outcome.ProviderWrong, 0, 10e18, BOND, 0);
        vm.expectEmit();
        emit SietchEscrow.Slashed(provider, id, STAKE, 2 * FEE, 10e18, STAKE - 10e18 - 2 * FEE, 0);
        escrow.resolve(id);
        assertEq(escrow.balances(buyer), 10e18 + BOND + 10e18, "refunded, bond back, compensated");
        assertEq(escrow.balances(buyer), buyerPlain, "as after a plain dispute");
        assertEq(escrow.balances(escrow.BURN_ADDRESS()), burnedPlain, "same burn");
        assertEq(escrow.balances(drawn[0]) + escrow.balances(drawn[2]), 2 * FEE, "majority paid from the slash");
        assertEq(escrow.balances(drawn[1]), 0, "minority unpaid");
        assertEq(escrow.balances(provider), 0, "provider unpaid");
        assertEq(_held(provider), 0, "provider slashed");
        (,,,,, uint128 dep, uint128 paid) = escrow.channels(ch);
        assertEq(paid, 0, "cursor untouched");
        assertEq(dep, 90e18, "reservation refunded");
        _assertConserved();
    }

    /// (c) No majority in any round: the buyer gets reservation and bond back, the provider nothing.
    function test_undelivered_undecided_refundsBuyer() public {
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        vm.prank(buyer);
        escrow.disputeUndelivered(id);
        _noVoteRounds(id);
        SietchEscrow.TicketRecord memory t = escrow.tickets(id);
        assertTrue(t.state == SietchEscrow.TicketState.Settled, "settled");
        assertEq(escrow.balances(buyer), 10e18 + BOND, "reservation and bond back");
        assertEq(escrow.balances(provider), 0, "provider not paid");
        assertEq(_held(provider), STAKE, "an undecided dispute slashes nobody");
        assertEq(escrow.totalBonds(), 0, "bond released");
        _assertConserved();
    }
}

/// Over random ticket sizes, voucher payments during the dispute and verdict sizes, a provider
/// found right on an undelivered dispute gets max(0, pay - fees), the buyer bond - max(0, fees -
/// pay), and the books balance. (Named *FuzzTest: left out of the gas snapshot.)
contract DisputeUndeliveredFuzzTest is UndeliveredBase {
    function testFuzz_undeliveredProviderRight_splitsPayAndBond(uint96 amount, uint96 voucher, bool all3) public {
        uint256 a = bound(amount, 1, 50e18);
        uint256 v = bound(voucher, 0, a);
        bytes32 id = _claimTicket(ch, JOB, a);
        address[3] memory drawn = _undeliveredAndDraw(id);
        if (v != 0) _claim(ch, v);
        _voteAndResolve(id, drawn, all3 ? 3 : 2, GOOD);
        uint256 pay = a - v;
        uint256 fees = (all3 ? 3 : 2) * uint256(FEE);
        assertEq(_verifierCredits(drawn), fees, "verifiers paid in full");
        assertEq(escrow.balances(provider), pay > fees ? pay - fees : 0, "provider: pay less fees");
        assertEq(escrow.balances(buyer), BOND - (fees > pay ? fees - pay : 0), "buyer: bond less uncovered fees");
        assertEq(_held(provider), STAKE, "stake untouched");
        _assertConserved();
    }
}
