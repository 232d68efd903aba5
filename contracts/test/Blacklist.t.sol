// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {MockToken} from "../src/MockToken.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";
import {BlacklistToken} from "./mocks/AttackTokens.sol";

/// Issue 22, item 4: a USDC-like token that blacklists. Each party of a dispute and of a claim is
/// blocked in turn; whoever it is, the settlement goes through and everybody else is paid.
contract BlacklistEachPartyTest is Base {
    bytes32 internal constant JOB = keccak256("blacklist job");
    uint256 internal constant PROVIDER_PK0 = 0xB1AC000;
    /// buyer, provider, the three drawn verifiers, the burn address
    uint256 internal constant PARTIES = 6;
    address internal constant BURN = 0x000000000000000000000000000000000000dEaD;
    BlacklistToken internal bl;

    function _newToken() internal override returns (MockToken) {
        bl = new BlacklistToken();
        return bl;
    }

    /// Every role blocked in turn, for both outcomes: `resolve` never reverts, every other
    /// party withdraws exactly its credit, the blocked one's credit waits and is paid once the
    /// token lets it through.
    function test_dispute_anyBlockedPartyBlocksNobodyElse() public {
        for (uint256 round = 0; round < 2 * PARTIES; ++round) {
            _disputeWithBlocked(round % PARTIES, round >= PARTIES, PROVIDER_PK0 + round);
        }
    }

    function _disputeWithBlocked(uint256 role, bool providerRight, uint256 pk) internal {
        address p = vm.addr(pk);
        pkOf[p] = pk;
        _registerAndStake(p, STAKE);
        _nextEpoch();
        bytes32 ch = _openTo(p, 100e18);
        bytes32 id = _claimTicketAs(pk, _ticket(ch, JOB, 10e18), 10e18, "");
        address[3] memory d = _disputeAndDraw(id);
        address[PARTIES] memory who = [buyer, p, d[0], d[1], d[2], BURN];
        uint256[PARTIES] memory before;
        for (uint256 i = 0; i < PARTIES; ++i) {
            before[i] = escrow.balances(who[i]);
        }
        bl.setBlocked(who[role], true);
        bytes32 out = providerRight ? keccak256("good") : keccak256("bad");
        _vote(id, JOB, d[0], out);
        _vote(id, JOB, d[1], out);
        _vote(id, JOB, d[2], providerRight ? keccak256("bad") : keccak256("good")); // the minority
        escrow.resolve(id); // credits only: nothing is sent here, to anybody
        assertTrue(escrow.tickets(id).state == SietchEscrow.TicketState.Settled, "settled");

        // What each one is owed by this dispute.
        uint256[PARTIES] memory owed;
        if (providerRight) {
            owed[1] = 10e18 + BOND - 2 * FEE;
        } else {
            owed[0] = 10e18 + BOND + 10e18; // reservation, bond, compensation
            owed[5] = STAKE - 2 * FEE - 10e18; // the rest of the slash
        }
        owed[2] = FEE;
        owed[3] = FEE;
        for (uint256 i = 0; i < PARTIES; ++i) {
            uint256 credit = escrow.balances(who[i]);
            assertEq(credit - before[i], owed[i], "credited");
            if (i == role || credit == 0) continue;
            assertEq(_takeOut(who[i]), credit, "paid");
        }
        if (escrow.balances(who[role]) != 0) {
            vm.expectRevert(abi.encodeWithSelector(BlacklistToken.Blocked.selector, who[role]));
            _payOut(who[role]);
        }
        bl.setBlocked(who[role], false);
        if (escrow.balances(who[role]) != 0) _takeOut(who[role]);
        assertEq(escrow.totalCredits(), 0, "every credit withdrawn");
    }

    /// Withdraws (or burns) everything credited to `a`; returns what it received.
    function _takeOut(address a) internal returns (uint256 received) {
        uint256 b = token.balanceOf(a);
        _payOut(a);
        received = token.balanceOf(a) - b;
    }

    function _payOut(address a) internal {
        if (a == BURN) {
            escrow.burn();
        } else {
            vm.prank(a);
            escrow.withdraw();
        }
    }

    /// A blocked provider cannot take its voucher pay (its own loss); the buyer's other channel
    /// pays its other provider, and the buyer's close returns the rest.
    function test_claims_blockedProviderBlocksOnlyItself() public {
        address other = verifiers[0]; // registered and staked: a provider too
        bytes32 ch = _open(100e18);
        bytes32 ch2 = _openTo(other, 100e18);
        bl.setBlocked(provider, true);
        _claimReverts(ch, 10e18, abi.encodeWithSelector(BlacklistToken.Blocked.selector, provider));
        SietchEscrow.Voucher[] memory vs = new SietchEscrow.Voucher[](1);
        bytes[] memory sigs = new bytes[](1);
        vs[0] = _voucher(ch, 10e18);
        sigs[0] = _signVoucher(BUYER_PK, ch, 10e18);
        vm.expectRevert(abi.encodeWithSelector(BlacklistToken.Blocked.selector, provider));
        escrow.claimBatch(vs, sigs);
        _claim(ch2, 10e18);
        assertEq(token.balanceOf(other), 10e18, "the other provider is paid");
        uint256 b = token.balanceOf(buyer);
        vm.prank(buyer);
        escrow.startClose(ch);
        vm.warp(block.timestamp + CLOSE_DELAY);
        escrow.finalizeClose(ch);
        assertEq(token.balanceOf(buyer) - b, 100e18, "the buyer's close returns the rest");
    }

    /// A blocked buyer: the provider's vouchers and tickets still pay it, the buyer's own refund
    /// waits for the token (its channel stays closing, claimable by its provider).
    function test_claims_blockedBuyerBlocksOnlyItself() public {
        bytes32 ch = _open(100e18);
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        bl.setBlocked(buyer, true);
        vm.warp(block.timestamp + CHALLENGE + 1);
        escrow.finalizeTicket(id);
        _claim(ch, 30e18);
        assertEq(_withdraw(provider), 10e18, "the ticket paid");
        assertEq(token.balanceOf(provider), 30e18, "vouchers paid");
        vm.prank(provider);
        escrow.startClose(ch);
        vm.warp(block.timestamp + CLOSE_DELAY);
        vm.expectRevert(abi.encodeWithSelector(BlacklistToken.Blocked.selector, buyer));
        escrow.finalizeClose(ch);
        _claim(ch, 40e18); // still closing: the provider still claims
        assertEq(token.balanceOf(provider), 40e18, "claimed while the buyer is blocked");
        bl.setBlocked(buyer, false);
        escrow.finalizeClose(ch);
        assertEq(token.balanceOf(address(escrow)), escrow.totalStaked(), "only the stakes are left");
    }
}
