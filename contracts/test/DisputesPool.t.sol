// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {MockToken} from "../src/MockToken.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";
import {VerifierPool} from "../src/VerifierPool.sol";
import {BlacklistToken} from "./mocks/AttackTokens.sol";

/// Issue 20, attack 6: one recipient the token refuses must not block a dispute for everyone.
contract BlacklistDisputeTest is Base {
    bytes32 internal constant JOB = keccak256("disputed job");
    BlacklistToken internal bl;

    function _newToken() internal override returns (MockToken) {
        bl = new BlacklistToken();
        return bl;
    }

    /// The token blocks a majority verifier and the burn address. The dispute still resolves;
    /// the buyer and the other verifier withdraw; the blocked verifier's credit waits for it.
    function test_blockedRecipient_blocksNobodyElse() public {
        bytes32 ch = _open(100e18);
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        address[3] memory d = _disputeAndDraw(id);
        address burnAddr = escrow.BURN_ADDRESS();
        bl.setBlocked(d[0], true);
        bl.setBlocked(burnAddr, true);
        _vote(id, JOB, d[0], keccak256("bad"));
        _vote(id, JOB, d[1], keccak256("bad"));
        escrow.resolve(id); // credits only: nothing is sent to the blocked accounts here
        assertTrue(escrow.tickets(id).state == SietchEscrow.TicketState.Settled, "resolved");
        assertEq(_withdraw(buyer), 10e18 + BOND + 10e18, "buyer refunded and compensated");
        assertEq(_withdraw(d[1]), FEE, "the other verifier paid");

        vm.prank(d[0]);
        vm.expectRevert(abi.encodeWithSelector(BlacklistToken.Blocked.selector, d[0]));
        escrow.withdraw();
        vm.expectRevert(abi.encodeWithSelector(BlacklistToken.Blocked.selector, burnAddr));
        escrow.burn();
        assertEq(escrow.balances(d[0]), FEE, "the blocked verifier's credit is kept");

        bl.setBlocked(d[0], false);
        bl.setBlocked(burnAddr, false);
        assertEq(_withdraw(d[0]), FEE, "withdrawable once unblocked");
        escrow.burn();
        assertEq(token.balanceOf(burnAddr), STAKE - 10e18 - 2 * FEE, "burned");
        assertEq(token.balanceOf(address(escrow)), 90e18 + N_VERIFIERS * STAKE, "channel and stakes left");
    }

    /// The provider is the blocked one: it wins the dispute, and the verifiers still get paid.
    function test_blockedProvider_verifiersStillPaid() public {
        bytes32 ch = _open(100e18);
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        address[3] memory d = _disputeAndDraw(id);
        bl.setBlocked(provider, true);
        _vote(id, JOB, d[0], keccak256("good"));
        _vote(id, JOB, d[1], keccak256("good"));
        escrow.resolve(id);
        assertEq(_withdraw(d[0]) + _withdraw(d[1]), 2 * FEE, "verifiers paid");
        assertEq(escrow.balances(provider), 10e18 + BOND - 2 * FEE, "the provider's credit waits");
    }
}

/// Issue 20, attack 7: an operator fills the pool with many small accounts to keep everyone else
/// out, or refills a freed seat at once.
contract PoolCaptureTest is Base {
    uint256 internal constant FILL_PK0 = 0xF111000;

    function _newcomer(uint256 pk, uint256 amount) internal returns (address a) {
        a = vm.addr(pk);
        pkOf[a] = pk;
        _register(a, amount);
    }

    /// 250 minimum-stake accounts fill the pool (256 seats with the fixture). A newcomer with
    /// as little stake as the smallest member is refused; one with 100 times the minimum takes
    /// the smallest member's seat from the next epoch and is drawn; the evicted one no longer is.
    function test_fullPool_largerNewcomerEvictsTheSmallest() public {
        _fillPool(FILL_PK0, MIN_STAKE);
        assertEq(escrow.poolSize(), escrow.MAX_POOL(), "full");
        _nextEpoch(); // the fillers are members now
        uint64 e = escrow.currentEpoch();

        address small = _newcomer(0x5E11, MIN_STAKE);
        vm.expectEmit();
        emit VerifierPool.PoolRefused(small, MIN_STAKE, MIN_STAKE);
        vm.prank(small);
        escrow.stake(MIN_STAKE);
        assertEq(escrow.seatOf(small), 0, "refused");

        address big = _newcomer(0xB16, 100 * uint256(MIN_STAKE));
        address evicted = vm.addr(FILL_PK0); // the first seat holding the smallest stake
        uint256 seat = escrow.seatOf(evicted);
        vm.expectEmit();
        emit VerifierPool.PoolEvicted(evicted, big, e + 1);
        vm.prank(big);
        escrow.stake(100 * uint256(MIN_STAKE));
        assertEq(escrow.seatOf(big), seat, "took the seat");
        assertEq(escrow.seatOf(evicted), 0, "evicted");
        (address now_,) = escrow.seatAt(seat - 1, e);
        (address next, uint256 w) = escrow.seatAt(seat - 1, e + 1);
        assertEq(now_, evicted, "the member keeps its seat to the end of the epoch");
        assertEq(next, big, "the newcomer holds it from the next one");
        assertEq(w, 100 * uint256(MIN_STAKE), "with its stake");

        _nextEpoch();
        bytes32 ch = _open(100e18);
        bool drawnBig;
        for (uint256 k = 0; k < 6 && !drawnBig; ++k) {
            bytes32 id = _claimTicket(ch, bytes32(k), 1e18);
            address[3] memory d = _disputeAndDraw(id);
            for (uint256 i = 0; i < 3; ++i) {
                assertTrue(d[i] != evicted && d[i] != small, "only members are drawn");
                if (d[i] == big) drawnBig = true;
            }
        }
        assertTrue(drawnBig, "the newcomer is drawn");
    }

    /// Members with 200 fill the pool; a staker with 150 is refused. A member leaves and, in the
    /// same block, an operator's account with 100 takes the freed seat. That does not keep the
    /// 150 staker out: it asks again (`joinPool`) and evicts the 100 account.
    function test_fullPool_refilledSeatDoesNotKeepALargerStakerOut() public {
        _fillPool(FILL_PK0, 2 * uint256(MIN_STAKE));
        _nextEpoch();
        uint64 e = escrow.currentEpoch();
        address large = _newcomer(0x1A26E, 150e18);
        vm.expectEmit();
        emit VerifierPool.PoolRefused(large, 150e18, 2 * uint256(MIN_STAKE));
        vm.prank(large);
        escrow.stake(150e18);

        address leaving = vm.addr(FILL_PK0 + 10);
        uint256 seat = escrow.seatOf(leaving);
        vm.prank(leaving);
        escrow.requestUnstake(2 * uint256(MIN_STAKE));
        address filler = _newcomer(0xF1F1, MIN_STAKE);
        vm.prank(filler);
        escrow.stake(MIN_STAKE);
        assertEq(escrow.seatOf(filler), seat, "the operator refilled the seat");

        vm.expectEmit();
        emit VerifierPool.PoolEvicted(filler, large, e + 1);
        vm.prank(large);
        escrow.joinPool();
        assertEq(escrow.seatOf(large), seat, "the larger staker took it");
        assertEq(escrow.seatOf(filler), 0, "the filler is out");

        _nextEpoch();
        (address m, uint256 w) = escrow.seatAt(seat - 1, escrow.currentEpoch());
        assertEq(m, large, "seated");
        assertEq(w, 150e18, "with its stake");
    }
}
