// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title MockToken
/// @notice A plain 18-decimal ERC-20 for development and tests: anyone may mint.
contract MockToken is ERC20 {
    constructor() ERC20("Sietch Mock USD", "mUSD") {}

    /// @notice Mints `amount` to `to`. Development only: there is no access control.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
