// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";

/// Overcharging to the cap (issue 20, attack 5): a provider that charges the ticket's maximum
/// whatever it used. The ticket carries the offer's prices, and the escrow refuses a claim
/// that charges more than the committed usage at those prices; the usage's fuel is what the
/// verifiers of a dispute check.
contract PricingTest is Base {
    uint128 internal constant PER_GFUEL = 3e18; // 3 tokens per 10^9 fuel
    uint128 internal constant PER_GPU_SECOND = 2e18;

    function _priced(bytes32 ch, bytes32 job, uint128 perGpuSecond) internal view returns (SietchEscrow.Ticket memory t) {
        t = _ticketAt(ch, job, 100e18, 0);
        t.pricePerGFuel = PER_GFUEL;
        t.pricePerGpuSecond = perGpuSecond;
    }

    function _charging(bytes32 job, uint64 fuel, uint64 gpuMillis, uint256 amount)
        internal
        pure
        returns (SietchEscrow.ResultCommitment memory r)
    {
        r = _result(bytes32(0), job, keccak256("output"), amount); // `_claim` binds it to the ticket's channel
        r.fuelUsed = fuel;
        r.gpuMillis = gpuMillis;
    }

    /// Signs both messages, then claims as the provider, expecting `err` when it is not empty.
    function _claim(SietchEscrow.Ticket memory t, SietchEscrow.ResultCommitment memory r, bytes memory err)
        internal
        returns (bytes32)
    {
        r.channelId = t.channelId;
        bytes memory ts = _sig(BUYER_PK, escrow.hashTicket(t));
        bytes memory rs = _sig(PROVIDER_PK, escrow.hashResult(r));
        if (err.length != 0) vm.expectRevert(err);
        vm.prank(provider);
        return escrow.claimTicket(t, ts, r, rs);
    }

    function test_aChargeAtTheMeteredCostIsClaimedAndOneUnitMoreIsRefused() public {
        bytes32 ch = _open(100e18);
        // 1,234 fuel and 56 GPU-ms: (1234 · 3e18 + 56 · 10^6 · 2e18) / 10^9, rounded up.
        uint256 cost = (uint256(1234) * PER_GFUEL + uint256(56) * 1e6 * PER_GPU_SECOND + 1e9 - 1) / 1e9;
        SietchEscrow.Ticket memory t = _priced(ch, "job-1", PER_GPU_SECOND);
        _claim(
            t,
            _charging("job-1", 1234, 56, cost + 1),
            abi.encodeWithSelector(SietchEscrow.OverCharged.selector, cost + 1, cost)
        );
        // The attacker's charge, the ticket's whole maximum: refused too.
        _claim(
            t,
            _charging("job-1", 1234, 56, 100e18),
            abi.encodeWithSelector(SietchEscrow.OverCharged.selector, 100e18, cost)
        );
        bytes32 id = _claim(t, _charging("job-1", 1234, 56, cost), "");
        assertEq(escrow.tickets(id).amount, cost, "reserved the metered cost");
    }

    /// A job that asked for no GPU is signed with a GPU price of 0: no GPU time the provider
    /// declares can be billed for it.
    function test_gpuTimeOnACpuTicketBillsNothing() public {
        bytes32 ch = _open(100e18);
        SietchEscrow.Ticket memory t = _priced(ch, "job-2", 0);
        uint256 fuelCost = (uint256(1000) * PER_GFUEL + 1e9 - 1) / 1e9;
        _claim(
            t,
            _charging("job-2", 1000, 3_600_000, fuelCost + 1),
            abi.encodeWithSelector(SietchEscrow.OverCharged.selector, fuelCost + 1, fuelCost)
        );
        _claim(t, _charging("job-2", 1000, 3_600_000, fuelCost), "");
    }
}
