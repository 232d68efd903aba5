// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";

/// Measures the transaction gas a call would cost: execution of the call plus the intrinsic
/// 21,000 and calldata cost. Storage is made cold first, as it is at the start of a transaction.
abstract contract GasMeter is Base {
    /// 21,000 + 4 per zero byte + 16 per non-zero byte of calldata (EIP-2028).
    function _intrinsic(bytes memory data) internal pure returns (uint256 g) {
        g = 21_000;
        for (uint256 i = 0; i < data.length; ++i) {
            g += data[i] == 0 ? 4 : 16;
        }
    }

    function _txGas(bytes memory data) internal returns (uint256) {
        vm.cool(address(escrow));
        vm.cool(address(token));
        // A transaction's `to` is warm from the start (EIP-2929); its storage is not.
        assertTrue(address(escrow).code.length != 0, "escrow deployed");
        uint256 start = gasleft();
        (bool ok,) = address(escrow).call(data);
        uint256 used = start - gasleft();
        assertTrue(ok, "call failed");
        return used + _intrinsic(data);
    }
}

/// Gas budgets of the happy path (issue 3); each test fails over budget.
/// Steady state: the provider was paid before, so its token balance and the channel's `paid` are
/// already non-zero (the first claim ever on a channel costs more; see `test_gas_firstClaim`).
contract GasTest is GasMeter {
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

    /// The escrow must deploy on chains that enforce EIP-170 (24,576 bytes of runtime code); see
    /// `optimizer_runs` in foundry.toml.
    function test_escrowFitsTheContractSizeLimit() public view {
        assertLe(address(escrow).code.length, 24_576, "escrow runtime code size (EIP-170)");
    }

    function test_gas_openChannel() public {
        vm.prank(buyer);
        uint256 g = _txGas(abi.encodeCall(SietchEscrow.openChannel, (provider, 50e18)));
        emit log_named_uint("openChannel: tx gas", g);
        assertLe(g, 150_000, "open a channel");
    }
}

/// The dispute path with a full verifier pool (`MAX_POOL` members): what each step costs, logged
/// (forge test -vv) for the record, with ceilings that catch a regression. Steady state: an
/// earlier dispute on the channel was settled (provider right), so credits and bonds were booked
/// before; its credits are what `test_gas_withdraw` withdraws.
contract DisputeGasTest is GasMeter {
    bytes32 internal constant JOB = keccak256("gas job");
    bytes32 internal id;

    function setUp() public override {
        super.setUp();
        _fillPool(0x9A5000, MIN_STAKE);
        _nextEpoch();
        bytes32 ch = _open(100e18);
        _claim(ch, 1e18); // the channel was used before
        bytes32 earlier = _claimTicket(ch, keccak256("earlier job"), 5e18);
        address[3] memory d = _disputeAndDraw(earlier);
        for (uint256 i = 0; i < 2; ++i) {
            _vote(earlier, keccak256("earlier job"), d[i], keccak256("good"));
        }
        escrow.resolve(earlier);
        id = _claimTicket(ch, JOB, 10e18);
    }

    function _voteData(address v, bytes32 outputHash) internal view returns (bytes memory) {
        SietchEscrow.ResultCommitment memory r = _result(escrow.tickets(id).channelId, JOB, outputHash, 0);
        return abi.encodeCall(SietchEscrow.submitVerdict, (id, r, _sig(_verifierPk(v), escrow.hashResult(r))));
    }

    /// Dispute, draw from 256 seats, two verdicts, resolve (provider wrong: slash and credits).
    function test_gas_disputePath() public {
        assertEq(escrow.poolSize(), escrow.MAX_POOL(), "full pool");
        vm.prank(buyer);
        uint256 gDispute = _txGas(abi.encodeCall(SietchEscrow.dispute, (id)));
        vm.roll(block.number + 2);
        uint256 gDraw = _txGas(abi.encodeCall(SietchEscrow.drawVerifiers, (id)));
        address[3] memory drawn = escrow.tickets(id).verifiers;
        assertEq(escrow.tickets(id).drawn, 3, "drawn");
        uint256 gVote1 = _txGas(_voteData(drawn[0], keccak256("bad")));
        uint256 gVote2 = _txGas(_voteData(drawn[1], keccak256("bad")));
        uint256 gResolve = _txGas(abi.encodeCall(SietchEscrow.resolve, (id)));
        assertEq(escrow.balances(buyer), 10e18 + BOND + 10e18, "buyer refunded and compensated");
        emit log_named_uint("dispute: tx gas", gDispute);
        emit log_named_uint("drawVerifiers, 256 seats: tx gas", gDraw);
        emit log_named_uint("submitVerdict (first): tx gas", gVote1);
        emit log_named_uint("submitVerdict (majority): tx gas", gVote2);
        emit log_named_uint("resolve (provider wrong, slash): tx gas", gResolve);
        assertLe(gDispute, 120_000, "dispute");
        assertLe(gDraw, 3_000_000, "draw over a full pool");
        assertLe(gVote1 + gVote2, 2 * 80_000, "verdicts");
        assertLe(gResolve, 300_000, "resolve");
    }

    /// The provider withdraws what the earlier dispute credited it (a cold token, as in a real
    /// transaction).
    function test_gas_withdraw() public {
        assertTrue(escrow.balances(provider) != 0, "credited");
        vm.prank(provider);
        uint256 g = _txGas(abi.encodeCall(SietchEscrow.withdraw, ()));
        emit log_named_uint("withdraw: tx gas", g);
        assertLe(g, 70_000, "withdraw");
    }
}
