// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {MockToken} from "../src/MockToken.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";
import {RebasingToken, SixDecimalToken, SwitchableFeeToken} from "./mocks/Tokens.sol";

/// Issue 22, item 4: a token that takes a fee on transfer is refused on every path that pulls.
contract FeeOnTransferTest is Base {
    SwitchableFeeToken internal fee;

    function _newToken() internal override returns (MockToken) {
        fee = new SwitchableFeeToken();
        return fee;
    }

    function test_feeOnTransfer_refusedOnEveryPull() public {
        bytes32 ch = _open(100e18);
        bytes32 id = _claimTicket(ch, keccak256("job"), 10e18);
        fee.setFee(100); // 1 %, switched on after the escrow was deployed (as USDT can be)
        token.mint(provider, 10e18);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.TokenFeeOnTransfer.selector, 10e18, 9.9e18));
        escrow.stake(10e18);
        vm.startPrank(buyer);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.TokenFeeOnTransfer.selector, 10e18, 9.9e18));
        escrow.openChannel(provider, 10e18);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.TokenFeeOnTransfer.selector, 10e18, 9.9e18));
        escrow.topUp(ch, 10e18);
        uint256 bondReceived = uint256(BOND) * 99 / 100;
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.TokenFeeOnTransfer.selector, BOND, bondReceived));
        escrow.dispute(id);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.TokenFeeOnTransfer.selector, BOND, bondReceived));
        escrow.disputeUndelivered(id);
        vm.stopPrank();
        assertEq(escrow.totalStaked(), STAKE * (1 + N_VERIFIERS), "nothing was booked");
        // Switched off again, the same calls go through.
        fee.setFee(0);
        vm.prank(buyer);
        escrow.dispute(id);
    }
}

/// A rebasing token: what can be seen on chain, without a cost on every voucher claim, is the
/// escrow's balance falling below the stakes, bonds and credits it holds (`totalStaked +
/// totalBonds + totalCredits`); the paths that pay one party out of the common pot stop then,
/// with a named error, until someone makes the balance whole. A shortfall smaller than what the
/// open channels hold is not seen (the channels' money is not summed on chain).
contract RebasingTokenTest is Base {
    RebasingToken internal reb;
    bytes32 internal ch;
    bytes32 internal closing;

    function _newToken() internal override returns (MockToken) {
        reb = new RebasingToken();
        return reb;
    }

    /// Before the rebase: the provider has a credit and stake unlocking, the buyer a channel
    /// whose close is due.
    function setUp() public override {
        super.setUp();
        ch = _open(100e18);
        closing = _open(50e18);
        bytes32 id = _claimTicket(ch, keccak256("job"), 10e18);
        vm.prank(buyer);
        escrow.startClose(closing);
        vm.prank(provider);
        escrow.requestUnstake(100e18);
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        escrow.finalizeTicket(id);
        assertEq(escrow.totalStaked(), STAKE * (1 + N_VERIFIERS), "every stake counted");
        assertEq(token.balanceOf(address(escrow)), _owed() + 140e18, "the books, and the channels' 140");
    }

    /// Stakes, bonds and credits: what the balance must cover besides the channels.
    function _owed() internal view returns (uint256) {
        return escrow.totalStaked() + escrow.totalBonds() + escrow.totalCredits();
    }

    function _short(uint256 payment) internal view returns (bytes memory) {
        return abi.encodeWithSelector(
            SietchEscrow.TokenBalanceShort.selector, token.balanceOf(address(escrow)), _owed() + payment
        );
    }

    function test_rebaseDown_stopsPayoutsFromThePot_untilMadeWhole() public {
        reb.rebase(9, 10); // every balance 10 % lower, without a transfer: more than the channels hold
        assertTrue(token.balanceOf(address(escrow)) < _owed(), "short");
        bytes memory err = _short(0); // withdraw and unstake book their amount out first
        vm.prank(provider);
        vm.expectRevert(err);
        escrow.withdraw();
        vm.prank(provider);
        vm.expectRevert(err);
        escrow.unstake();
        vm.expectRevert(_short(50e18));
        escrow.finalizeClose(closing);
        // A voucher claim pays the channel's own money and checks nothing (its gas is the
        // market's per-job cost).
        _claim(ch, 20e18);
        assertTrue(token.balanceOf(provider) + 1 >= 10e18, "the claim paid (less the token's rounding)");

        // Anyone may make the balance whole (+3: the token's share rounding); payouts go on.
        reb.mint(address(escrow), _owed() + 50e18 - token.balanceOf(address(escrow)) + 3);
        vm.prank(provider);
        escrow.withdraw();
        vm.prank(provider);
        escrow.unstake();
        escrow.finalizeClose(closing);
        assertEq(escrow.balances(provider), 0, "the provider's credit was paid");
    }

    /// The limit: a rebase down smaller than what the open channels hold is not seen; the
    /// payouts go on and the last to withdraw from the channels lose the difference.
    function test_smallRebaseDown_isNotSeenWhileTheChannelsCoverIt() public {
        reb.rebase(99, 100); // 1 % of 6,150 tokens: 61.5, less than the channels' 140
        assertTrue(token.balanceOf(address(escrow)) >= _owed() + 50e18, "covered by the channels' money");
        vm.prank(provider);
        escrow.withdraw();
        escrow.finalizeClose(closing);
    }

    /// A rebase up leaves a surplus nobody is owed: harmless, nothing stops.
    function test_rebaseUp_isHarmless() public {
        reb.rebase(101, 100);
        vm.prank(provider);
        escrow.withdraw();
        vm.prank(provider);
        escrow.unstake();
        escrow.finalizeClose(closing);
        assertTrue(token.balanceOf(address(escrow)) > _owed(), "surplus");
    }
}

/// A USDC-like token with 6 decimals: the escrow works in base units and never reads
/// `decimals`, so a deployment with amounts a million times smaller than 18-decimal ones runs
/// every path the same, down to a charge of one base unit.
contract SixDecimalTest is Base {
    uint128 internal constant BOND6 = 30e6;
    uint128 internal constant FEE6 = 5e6;
    bytes32 internal constant JOB = keccak256("six decimal job");

    function _newToken() internal override returns (MockToken) {
        return new SixDecimalToken();
    }

    function _config() internal pure override returns (SietchEscrow.Config memory c) {
        c = super._config();
        c.disputeBond = BOND6;
        c.verifierFee = FEE6;
        c.minStake = 100e6;
        c.minDeposit = 1e6;
    }

    function test_sixDecimals_voucherTicketDisputeWithdraw() public {
        assertEq(token.decimals(), 6, "6 decimals");
        bytes32 ch = _open(2e6); // 2 tokens
        _claim(ch, 1); // one base unit: a millionth of a token
        assertEq(token.balanceOf(provider), 1, "one base unit paid");

        // A ticket at real 6-decimal prices: 0.5 token per 10^9 fuel; 1,234 fuel costs
        // 0.000617 tokens, so the charge rounds up to one base unit and no more.
        SietchEscrow.Ticket memory t = _ticket(ch, JOB, 1e6);
        t.pricePerGFuel = 5e5;
        bytes memory ts = _sig(BUYER_PK, escrow.hashTicket(t));
        SietchEscrow.ResultCommitment memory over = _result(ch, JOB, keccak256("good"), 2);
        bytes memory overSig = _sig(PROVIDER_PK, escrow.hashResult(over));
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.OverCharged.selector, 2, 1));
        escrow.claimTicket(t, ts, over, overSig);
        SietchEscrow.ResultCommitment memory r = _result(ch, JOB, keccak256("good"), 1);
        bytes memory rs = _sig(PROVIDER_PK, escrow.hashResult(r));
        vm.prank(provider);
        bytes32 id = escrow.claimTicket(t, ts, r, rs);

        address[3] memory d = _disputeAndDraw(id);
        _vote(id, JOB, d[0], keccak256("good"));
        _vote(id, JOB, d[1], keccak256("good"));
        escrow.resolve(id);
        assertEq(_withdraw(d[0]) + _withdraw(d[1]), 2 * FEE6, "verifiers paid from the bond");
        assertEq(_withdraw(provider), 1 + BOND6 - 2 * FEE6, "the ticket's unit and the rest of the bond");
        assertEq(token.balanceOf(address(escrow)), escrow.totalStaked() + 2e6 - 2, "stakes and the channel's rest");
    }
}
