// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestToken
/// @notice An ERC-20 with the name, symbol and decimals it is given, for development and tests
/// (a 6-decimal USDC-like token: `sietch devnet --token-decimals 6`): anyone may mint.
contract TestToken is ERC20 {
    uint8 private immutable _decimals;

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) {
        _decimals = decimals_;
    }

    /// @notice The decimals given at deployment.
    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    /// @notice Mints `amount` to `to`. Development only: there is no access control.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
