// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";

/// Property tests over random amounts and orders.
contract FuzzTest is Base {
    /// Whatever vouchers arrive in whatever order, the provider gets min(highest cumulative, deposit).
    function testFuzz_vouchersPayMaxCumulativeCappedByDeposit(uint96 deposit, uint96[5] memory cums) public {
        uint256 dep = bound(deposit, MIN_DEPOSIT, 1_000e18);
        bytes32 ch = _open(dep);
        uint256 maxCum;
        for (uint256 i = 0; i < cums.length; ++i) {
            uint256 c = cums[i];
            bytes memory sig = _signVoucher(BUYER_PK, ch, c);
            uint256 before = token.balanceOf(provider);
            try escrow.claim(_voucher(ch, c), sig) {
                assertTrue(c > maxCum || token.balanceOf(provider) == before, "stale voucher paid");
            } catch {
                assertEq(token.balanceOf(provider), before, "failed claim moved money");
            }
            if (c > maxCum) maxCum = c;
            uint256 expected = maxCum < dep ? maxCum : dep;
            assertEq(token.balanceOf(provider), expected, "paid == min(max cumulative, deposit)");
        }
    }

    /// A close splits the deposit exactly between provider and buyer.
    function testFuzz_closeSplitsDepositExactly(uint96 deposit, uint96 topUp, uint96 cum) public {
        uint256 dep = bound(deposit, MIN_DEPOSIT, 1_000e18);
        uint256 extra = bound(topUp, 0, 1_000e18);
        bytes32 ch = _open(dep);
        if (extra != 0) {
            vm.prank(buyer);
            escrow.topUp(ch, extra);
        }
        uint256 c = bound(cum, 1, 3_000e18);
        _claim(ch, c);
        vm.prank(buyer);
        escrow.startClose(ch);
        vm.warp(block.timestamp + CLOSE_DELAY);
        uint256 buyerBefore = token.balanceOf(buyer);
        escrow.finalizeClose(ch);
        uint256 total = dep + extra;
        uint256 toProvider = c < total ? c : total;
        assertEq(token.balanceOf(provider), toProvider, "provider share");
        assertEq(token.balanceOf(buyer) - buyerBefore, total - toProvider, "buyer share");
    }

    /// A ticket charges at most its maxAmount and pays exactly its amount once.
    function testFuzz_ticketPaysItsAmountOnce(uint96 maxAmount, uint96 amount, bytes32 jobId) public {
        uint256 max = bound(maxAmount, 1, 100e18);
        uint256 amt = bound(amount, 1, 200e18);
        bytes32 ch = _open(100e18);
        SietchEscrow.Ticket memory t = _ticket(ch, jobId, max);
        SietchEscrow.ResultCommitment memory r = _result(ch, jobId, keccak256("good"), amt);
        bytes memory ts = _sig(BUYER_PK, escrow.hashTicket(t));
        bytes memory rs = _sig(PROVIDER_PK, escrow.hashResult(r));
        vm.startPrank(provider);
        if (amt > max) {
            vm.expectRevert(abi.encodeWithSelector(SietchEscrow.OverMaxAmount.selector, amt, max));
            escrow.claimTicket(t, ts, r, rs);
            return;
        }
        bytes32 id = escrow.claimTicket(t, ts, r, rs);
        vm.warp(block.timestamp + CHALLENGE + 1);
        escrow.finalizeTicket(id);
        assertEq(escrow.balances(provider), amt, "credited the amount");
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.TicketExists.selector, id));
        escrow.claimTicket(t, ts, r, rs);
        vm.stopPrank();
    }

    /// Any signer other than the buyer is refused.
    function testFuzz_onlyBuyerSignaturePays(uint256 pk, uint96 cum) public {
        pk = bound(pk, 1, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140);
        vm.assume(pk != BUYER_PK);
        uint256 c = bound(cum, 1, 10e18);
        bytes32 ch = _open(10e18);
        bytes memory sig = _signVoucher(pk, ch, c);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, buyer));
        escrow.claim(_voucher(ch, c), sig);
    }

    /// Job [prior, prior + amt] on a channel whose vouchers paid up to `prior`; the buyer's voucher
    /// `other` is claimed before the ticket or during its challenge window. However they interleave,
    /// the provider ends with exactly the highest cumulative covered: no job is paid twice.
    function testFuzz_ticketAndVoucherNeverPayAJobTwice(uint96 prior, uint96 amount, uint96 other, bool first) public {
        uint256 p = bound(prior, 0, 50e18);
        uint256 amt = bound(amount, 1, 20e18);
        uint256 v = bound(other, 0, 100e18);
        uint256 end = p + amt;
        bytes32 ch = _open(200e18); // never short: every claim pays what it owes
        if (p != 0) _claim(ch, p);
        bytes32 jobId = keccak256(abi.encode(p, amt));
        SietchEscrow.Ticket memory t = _ticketAt(ch, jobId, amt, p);
        if (first && v > p) _claim(ch, v);
        if (first && v >= end) {
            _claimTicketFor(t, amt, abi.encodeWithSelector(SietchEscrow.TicketAlreadyPaid.selector, end, v));
        } else {
            bytes32 id = _claimTicketFor(t, amt, "");
            if (!first && v > p) _claim(ch, v);
            vm.warp(block.timestamp + CHALLENGE + 1);
            escrow.finalizeTicket(id);
        }
        uint256 top = end > v ? end : v;
        // Vouchers pay the provider directly, tickets credit it.
        assertEq(token.balanceOf(provider) + escrow.balances(provider), top, "provider paid the covered range once");
        (,,,,,, uint128 paid) = escrow.channels(ch);
        assertEq(paid, top, "cursor");
    }
}
