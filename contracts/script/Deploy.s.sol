// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";
import {MockToken} from "../src/MockToken.sol";

interface VmScript {
    function startBroadcast() external;
    function stopBroadcast() external;
    function envOr(string calldata name, address defaultValue) external view returns (address);
}

/// Deploys the escrow (and a MockToken when TOKEN is not set) with development parameters:
///   forge script script/Deploy.s.sol --rpc-url $RPC --private-key $KEY --broadcast
/// The Rust crate (`sietch_contracts::deploy`) does the same from code, with parameters.
contract Deploy {
    VmScript internal constant vm = VmScript(address(uint160(uint256(keccak256("hevm cheat code")))));

    function run() external returns (SietchEscrow escrow, address token) {
        token = vm.envOr("TOKEN", address(0));
        vm.startBroadcast();
        if (token == address(0)) token = address(new MockToken());
        escrow = new SietchEscrow(
            IERC20(token),
            SietchEscrow.Config({
                closeDelay: 1 days,
                challengeWindow: 1 hours,
                verdictWindow: 2 hours,
                unstakeDelay: 7 days,
                disputeBond: 30e18,
                verifierFee: 5e18,
                minStake: 100e18,
                minDeposit: 1e18,
                // 100 blocks (about 3 minutes at 2 s blocks): a stake change counts in verifier
                // draws from the next epoch, and a draw must run in its seed block's epoch.
                epochBlocks: 100
            })
        );
        vm.stopBroadcast();
    }
}
