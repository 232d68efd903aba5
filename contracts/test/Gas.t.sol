// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";

/// Gas budgets of the happy path (issue 3). Each test measures the transaction gas a claim would
/// cost: execution of the call plus the intrinsic 21,000 and calldata cost, and fails over budget.
/// Steady state: the provider was paid before, so its token balance and the channel's `paid` are
/// already non-zero (the first claim ever on a channel costs more; see `test_gas_firstClaim`).
contract GasTest is Base {
    uint256 internal constant BATCH = 20;
    uint256 internal constant JOBS_PER_VOUCHER = 100;
    bytes32[] internal chans;
    bytes32 internal freshChannel;

    function setUp() public override {
        super.setUp();
        for (uint256 i = 0; i < BATCH + 1; ++i) {
            bytes32 ch = _open(100e18);
            chans.push(ch);
            _claim(ch, 1e18); // earlier jobs already settled
        }
        // A fresh provider with no token balance yet: storage goes zero -> non-zero twice.
        address fresh = vm.addr(0xF2E5);
        _registerAndStake(fresh, MIN_STAKE);
        vm.prank(buyer);
        freshChannel = escrow.openChannel(fresh, 100e18);
        vm.warp(block.timestamp + 1);
    }

    /// 21,000 + 4 per zero byte + 16 per non-zero byte of calldata (EIP-2028).
    function _intrinsic(bytes memory data) internal pure returns (uint256 g) {
        g = 21_000;
        for (uint256 i = 0; i < data.length; ++i) {
            g += data[i] == 0 ? 4 : 16;
        }
    }

    function _txGas(bytes memory data) internal returns (uint256) {
        uint256 start = gasleft();
        (bool ok,) = address(escrow).call(data);
        uint256 used = start - gasleft();
        assertTrue(ok, "call failed");
        return used + _intrinsic(data);
    }

    function _claimData(bytes32 ch, uint256 cum) internal view returns (bytes memory) {
        return abi.encodeCall(SietchEscrow.claim, (_voucher(ch, cum), _signVoucher(BUYER_PK, ch, cum)));
    }

    function test_gas_claimOneVoucher() public {
        uint256 g = _txGas(_claimData(chans[0], 3e18));
        emit log_named_uint("claim one voucher: tx gas", g);
        emit log_named_uint("claim one voucher: gas per job over 100 jobs", g / JOBS_PER_VOUCHER);
        assertLe(g, 60_000, "claim one voucher");
        // One voucher settles every job since the last claim: 100 jobs per voucher.
        assertLe(g / JOBS_PER_VOUCHER, 1_000, "gas per job, amortized over 100 jobs");
    }

    function test_gas_firstClaim() public {
        uint256 g = _txGas(_claimData(freshChannel, 3e18));
        emit log_named_uint("first claim to a fresh provider: tx gas", g);
        assertLe(g, 90_000, "first claim on a channel to a fresh provider");
    }

    function test_gas_claimBatch20() public {
        SietchEscrow.Voucher[] memory vs = new SietchEscrow.Voucher[](BATCH);
        bytes[] memory sigs = new bytes[](BATCH);
        for (uint256 i = 0; i < BATCH; ++i) {
            vs[i] = _voucher(chans[i], 2e18 + i);
            sigs[i] = _signVoucher(BUYER_PK, chans[i], 2e18 + i);
        }
        uint256 g = _txGas(abi.encodeCall(SietchEscrow.claimBatch, (vs, sigs)));
        emit log_named_uint("claimBatch(20): tx gas", g);
        emit log_named_uint("claimBatch(20): gas per voucher", g / BATCH);
        assertLe(g / BATCH, 35_000, "batch claim, gas per voucher");
    }

    function test_gas_openChannel() public {
        vm.prank(buyer);
        uint256 g = _txGas(abi.encodeCall(SietchEscrow.openChannel, (provider, 50e18)));
        emit log_named_uint("openChannel: tx gas", g);
        assertLe(g, 150_000, "open a channel");
    }
}
