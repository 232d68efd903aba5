// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @title Operators
/// @notice A cold owner and a hot operator. The account that stakes and is paid (the *owner*,
/// whose key can stay in a cold wallet) names one *operator*: the node's hot signing key. The
/// operator does the node's day-to-day calls in the owner's name — registers the owner's node
/// key, signs result commitments and claims the owner's tickets, votes when the owner is drawn
/// as a verifier, starts closes of the owner's channels and disputes for the owner as a buyer —
/// while every token that leaves the escrow for the owner (voucher pay, credits, unstaked
/// stake) goes to the owner's address, and only the owner stakes, unstakes, withdraws and
/// changes its operator. A stolen operator key can therefore neither move the stake nor the
/// earnings; the owner revokes it with `setOperator(address(0))` (contracts/README.md, "A cold
/// owner").
/// @dev One operator per owner and one owner per operator: `ownerOf` holds an address only
/// while it is that owner's operator (cleared when the owner names another or none), so a
/// revoked operator acts for nobody. An operator names no operator of its own, and an owner
/// that has one cannot serve as someone else's, so authority never chains.
abstract contract Operators {
    /// @notice The operator `owner` named; address(0) when none.
    mapping(address owner => address) public operatorOf;
    /// @notice The owner `operator` serves; address(0) when it serves none.
    mapping(address operator => address) public ownerOf;

    /// @notice `owner` named `operator` (address(0): it revoked its operator).
    event OperatorSet(address indexed owner, address indexed operator);

    /// @notice The address cannot be this owner's operator: it is the owner itself, already
    /// another owner's operator, an owner with an operator, or an account of the registry.
    error OperatorTaken(address operator);
    /// @notice An operator cannot name operators (only owners do).
    error OperatorCannotAppoint(address operator);

    /// @notice Names `operator` as the caller's operator, replacing (and revoking) the one
    /// before; `address(0)` revokes without a successor. Only the owner (the caller) may.
    function setOperator(address operator) external {
        address owner = msg.sender;
        if (ownerOf[owner] != address(0)) revert OperatorCannotAppoint(owner);
        address previous = operatorOf[owner];
        if (previous != address(0)) delete ownerOf[previous];
        if (operator != address(0)) {
            if (
                operator == owner || ownerOf[operator] != address(0) || operatorOf[operator] != address(0)
                    || !_mayOperate(operator)
            ) revert OperatorTaken(operator);
            ownerOf[operator] = owner;
        }
        operatorOf[owner] = operator;
        emit OperatorSet(owner, operator);
        _operatorChanged(owner, operator);
    }

    /// Whether `who` is `account` itself or the operator `account` named.
    function _actsFor(address who, address account) internal view returns (bool) {
        return who == account || (who != address(0) && operatorOf[account] == who);
    }

    /// The account `caller` acts for when it registers: its owner while it is an operator,
    /// else itself.
    function _principal(address caller) internal view returns (address owner) {
        owner = ownerOf[caller];
        if (owner == address(0)) owner = caller;
    }

    /// Whether `operator` may be named at all (the escrow refuses accounts of its registry).
    function _mayOperate(address operator) internal view virtual returns (bool);

    /// Called after `owner` named `operator` (address(0): revoked).
    function _operatorChanged(address owner, address operator) internal virtual;
}
