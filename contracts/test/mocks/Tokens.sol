// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {MockToken} from "../../src/MockToken.sol";

/// A USDC-like token: 6 decimals. The escrow works in base units and never reads decimals, so
/// everything must work the same with amounts a million times smaller than 18-decimal ones.
contract SixDecimalToken is MockToken {
    function decimals() public pure override returns (uint8) {
        return 6;
    }
}

/// A token that starts plain and, once switched on, keeps `feeBps` of every transfer (as USDT
/// can be switched to): a deposit made after the switch must be refused on every path that pulls.
contract SwitchableFeeToken is MockToken {
    uint256 public feeBps;

    function setFee(uint256 bps) external {
        feeBps = bps;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0) && feeBps != 0) {
            uint256 fee = value * feeBps / 10_000;
            super._update(from, address(0xFEE), fee);
            value -= fee;
        }
        super._update(from, to, value);
    }
}

/// A rebasing token: balances are shares times `num / den`, and `rebase` changes the ratio for
/// every holder at once without a transfer (as elastic-supply and some yield tokens do). After a
/// rebase down the escrow holds less than it owes.
contract RebasingToken is MockToken {
    uint256 public num = 1;
    uint256 public den = 1;

    function rebase(uint256 num_, uint256 den_) external {
        num = num_;
        den = den_;
    }

    function balanceOf(address account) public view override returns (uint256) {
        return super.balanceOf(account) * num / den;
    }

    function totalSupply() public view override returns (uint256) {
        return super.totalSupply() * num / den;
    }

    /// Transfers and mints move shares: `value` tokens are `value * den / num` shares.
    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value * den / num);
    }
}
