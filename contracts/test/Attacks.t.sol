// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";
import {FeeOnTransferToken, ReentrantToken} from "./mocks/AttackTokens.sol";

/// Attacks as tests: each one tries to take money the attacker is not owed.
contract AttackTest is Base {
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    function test_reentrancyThroughToken_cannotPayTwice() public {
        ReentrantToken evil = new ReentrantToken();
        SietchEscrow e = _deploy(IERC20(address(evil)));
        evil.mint(buyer, 100e18);
        evil.mint(provider, STAKE);
        vm.startPrank(provider);
        e.register(bytes32(uint256(1)), new bytes(64));
        evil.approve(address(e), type(uint256).max);
        e.stake(STAKE);
        vm.stopPrank();
        vm.startPrank(buyer);
        evil.approve(address(e), type(uint256).max);
        bytes32 ch = e.openChannel(provider, 10e18);
        vm.stopPrank();
        SietchEscrow.Voucher memory v = _voucher(ch, 5e18);
        bytes memory sig = _sig(BUYER_PK, e.hashVoucher(v));
        // On the payout transfer the token re-enters claim with the same voucher.
        evil.arm(address(e), abi.encodeCall(SietchEscrow.claim, (v, sig)));
        e.claim(v, sig);
        assertTrue(evil.attempted(), "re-entry attempted");
        assertTrue(!evil.reentered(), "re-entry refused");
        assertEq(evil.balanceOf(provider), 5e18, "paid exactly once");
        assertEq(evil.balanceOf(address(e)), STAKE + 5e18, "stake and rest still held");
    }

    function test_reentrancyThroughToken_finalizeCloseCannotRefundTwice() public {
        ReentrantToken evil = new ReentrantToken();
        SietchEscrow e = _deploy(IERC20(address(evil)));
        evil.mint(buyer, 100e18);
        evil.mint(provider, STAKE);
        vm.startPrank(provider);
        e.register(bytes32(uint256(1)), new bytes(64));
        evil.approve(address(e), type(uint256).max);
        e.stake(STAKE);
        vm.stopPrank();
        vm.startPrank(buyer);
        evil.approve(address(e), type(uint256).max);
        bytes32 a = e.openChannel(provider, 10e18);
        e.openChannel(provider, 10e18); // a second channel the attacker would like to drain
        e.startClose(a);
        vm.stopPrank();
        vm.warp(block.timestamp + CLOSE_DELAY);
        evil.arm(address(e), abi.encodeCall(SietchEscrow.finalizeClose, (a)));
        e.finalizeClose(a);
        assertTrue(evil.attempted() && !evil.reentered(), "re-entry refused");
        assertEq(evil.balanceOf(buyer), 90e18, "refunded once");
    }

    function test_feeOnTransferToken_refused() public {
        FeeOnTransferToken fee = new FeeOnTransferToken();
        SietchEscrow e = _deploy(IERC20(address(fee)));
        fee.mint(provider, STAKE);
        vm.startPrank(provider);
        e.register(bytes32(uint256(1)), new bytes(64));
        fee.approve(address(e), type(uint256).max);
        // The first deposit (a stake) is refused: the escrow would book more than it holds.
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.TokenFeeOnTransfer.selector, 10e18, 9.9e18));
        e.stake(10e18);
        vm.stopPrank();
    }

    function test_replayAcrossChannels_refused() public {
        bytes32 a = _open(10e18);
        bytes32 b = _open(10e18); // same buyer and provider, reopened
        bytes memory sigA = _signVoucher(BUYER_PK, a, 5e18);
        _claim(a, 5e18);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, buyer));
        escrow.claim(_voucher(b, 5e18), sigA);
    }

    function test_replayAcrossChains_refused() public {
        bytes32 ch = _open(10e18);
        uint256 home = vm.getChainId();
        vm.chainId(1);
        bytes memory foreign = _signVoucher(BUYER_PK, ch, 5e18);
        vm.chainId(home);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, buyer));
        escrow.claim(_voucher(ch, 5e18), foreign);
    }

    function test_replayAcrossContracts_refused() public {
        bytes32 ch = _open(10e18);
        bytes memory sig = _signVoucher(BUYER_PK, ch, 5e18);
        SietchEscrow other = _deploy(IERC20(address(token)));
        assertTrue(other.hashVoucher(_voucher(ch, 5e18)) != escrow.hashVoucher(_voucher(ch, 5e18)), "domains differ");
        // Force a channel with the same id into the other deployment: the signature still fails.
        token.mint(provider, STAKE);
        vm.startPrank(provider);
        other.register(bytes32(uint256(1)), new bytes(64));
        token.approve(address(other), type(uint256).max);
        other.stake(STAKE);
        vm.stopPrank();
        vm.startPrank(buyer);
        token.approve(address(other), type(uint256).max);
        bytes32 ch2 = other.openChannel(provider, 10e18);
        vm.stopPrank();
        assertTrue(ch2 != ch, "channel ids include the contract");
        // The buyer signs for ch2 but under the first deployment's domain.
        bytes memory sig2 = _signVoucher(BUYER_PK, ch2, 5e18);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, buyer));
        other.claim(_voucher(ch2, 5e18), sig2);
        vm.expectRevert(
            abi.encodeWithSelector(SietchEscrow.WrongChannelState.selector, ch, SietchEscrow.ChannelState.None)
        );
        other.claim(_voucher(ch, 5e18), sig);
    }

    function test_malleableSignature_refused() public {
        bytes32 ch = _open(10e18);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(BUYER_PK, escrow.hashVoucher(_voucher(ch, 5e18)));
        bytes memory flipped = abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, buyer));
        escrow.claim(_voucher(ch, 5e18), flipped);
        bytes memory vZeroOne = abi.encodePacked(r, s, v - 27);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, buyer));
        escrow.claim(_voucher(ch, 5e18), vZeroOne);
        bytes memory compact = abi.encodePacked(r, s);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, buyer));
        escrow.claim(_voucher(ch, 5e18), compact);
        // The canonical one still works.
        escrow.claim(_voucher(ch, 5e18), abi.encodePacked(r, s, v));
        assertEq(token.balanceOf(provider), 5e18, "canonical signature pays");
    }

    function test_frontRunCloseWithStaleVoucher_providerStillPaidInFull() public {
        bytes32 ch = _open(10e18);
        bytes memory stale = _signVoucher(BUYER_PK, ch, 2e18);
        bytes memory latest = _signVoucher(BUYER_PK, ch, 7e18);
        // The buyer starts a close and races the provider with an old voucher.
        vm.startPrank(buyer);
        escrow.startClose(ch);
        escrow.claim(_voucher(ch, 2e18), stale);
        vm.stopPrank();
        escrow.claim(_voucher(ch, 7e18), latest);
        vm.warp(block.timestamp + CLOSE_DELAY);
        uint256 before = token.balanceOf(buyer);
        escrow.finalizeClose(ch);
        assertEq(token.balanceOf(provider), 7e18, "provider got the latest cumulative");
        assertEq(token.balanceOf(buyer) - before, 3e18, "buyer got the rest");
    }

    function test_frontRunClaimWithFinalize_notPossibleBeforeDelay() public {
        bytes32 ch = _open(10e18);
        vm.prank(buyer);
        escrow.startClose(ch);
        vm.warp(block.timestamp + CLOSE_DELAY - 1);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.CloseNotDue.selector, uint64(block.timestamp) + 1));
        escrow.finalizeClose(ch);
    }

    function test_dustChannels_refused() public {
        vm.startPrank(buyer);
        token.approve(address(escrow), type(uint256).max);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadAmount.selector, 1));
        escrow.openChannel(provider, 1);
        vm.stopPrank();
    }

    function test_dustStakers_cannotEnterPool() public {
        uint256 size = escrow.poolSize();
        for (uint256 i = 1; i <= 20; ++i) {
            _registerAndStake(address(uint160(0xD000 + i)), MIN_STAKE - 1);
        }
        assertEq(escrow.poolSize(), size, "dust stakes never drawn");
    }

    function test_providerCannotEscapeSlashByUnstaking() public {
        bytes32 ch = _open(100e18);
        bytes32 id = _claimTicket(ch, keccak256("job"), 10e18);
        vm.prank(provider);
        escrow.requestUnstake(STAKE);
        address[3] memory drawn = _disputeAndDraw(id);
        _vote(id, keccak256("job"), drawn[0], keccak256("bad"));
        _vote(id, keccak256("job"), drawn[1], keccak256("bad"));
        escrow.resolve(id);
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        vm.prank(provider);
        vm.expectRevert(SietchEscrow.NothingToUnstake.selector);
        escrow.unstake();
    }

    function test_partyCannotVoteOnOwnDispute() public {
        bytes32 ch = _open(100e18);
        bytes32 id = _claimTicket(ch, keccak256("job"), 10e18);
        _disputeAndDraw(id);
        SietchEscrow.ResultCommitment memory r = _result(ch, keccak256("job"), keccak256("good"), 0);
        bytes memory sig = _sig(PROVIDER_PK, escrow.hashResult(r));
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.NotAVerifier.selector, provider));
        escrow.submitVerdict(id, r, sig);
    }
}
