// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @title VerifierPool
/// @notice The accounts a dispute's verifiers are drawn from, weighted by stake, with every weight
/// and every seat frozen for an epoch of `epochBlocks` blocks.
/// @dev Why epochs: a draw is seeded by a block hash, and whoever knows the seed could otherwise
/// try stake changes, unstake requests or pool reorders off chain until one draws its own accounts,
/// and send that change together with the draw. Here a change made in epoch `e` counts from epoch
/// `e + 1` on, and a draw reads the weights and seats of the epoch it runs in, which must also be
/// the epoch of its seed block (the escrow re-arms the draw otherwise). So everything a draw reads
/// was fixed before its seed block was mined.
///
/// The pool holds at most `MAX_POOL` seats (a draw's gas is one pass over them). When it is full,
/// a newcomer takes the seat of the member with the smallest stake if its own stake is larger (the
/// member leaves at the end of the epoch); otherwise it is refused with an event. So a pool of
/// small accounts cannot lock out a larger staker, and a seat freed in a block cannot be refilled
/// by a smaller account ahead of a larger one for longer than it takes the larger one to call
/// `joinPool`.
abstract contract VerifierPool {
    /// @notice Largest number of seats; bounds the gas of a draw and of a join when full.
    uint256 public constant MAX_POOL = 256;

    /// A weight that changes lazily at an epoch boundary: `weight` until `nextEpoch`, then `next`.
    struct Weight {
        uint128 weight;
        uint128 next;
        uint64 nextEpoch;
    }

    /// A seat: `current` until `switchEpoch`, then `next` (address(0): empty).
    struct Seat {
        address current;
        uint64 switchEpoch;
        address next;
    }

    /// @notice Blocks per epoch: how long a stake change waits before it counts in draws.
    uint64 public immutable epochBlocks;

    mapping(address account => Weight) internal _weights;
    /// 1-based index of the seat an account holds from the next epoch on; 0 when none.
    mapping(address account => uint256) public seatOf;
    Seat[] internal _seats;

    /// @notice The account holds a seat from `epoch` on (true), or leaves its seat at `epoch` (false).
    event PoolMembership(address indexed account, bool member, uint64 epoch);
    /// @notice The pool was full and `account`'s stake was not larger than the smallest member's.
    event PoolRefused(address indexed account, uint256 weight, uint256 smallest);
    /// @notice `account` took the seat of `evicted`, the smallest member, from `epoch` on.
    event PoolEvicted(address indexed evicted, address indexed account, uint64 epoch);

    constructor(uint64 epochBlocks_) {
        epochBlocks = epochBlocks_;
    }

    /// @notice The epoch `block.number` is in.
    function currentEpoch() public view returns (uint64) {
        return uint64(block.number / epochBlocks);
    }

    /// @notice The epoch of block `blockNumber`.
    function epochOf(uint256 blockNumber) public view returns (uint64) {
        return uint64(blockNumber / epochBlocks);
    }

    /// @notice Number of seats (some may be empty).
    function poolSize() external view returns (uint256) {
        return _seats.length;
    }

    /// @notice Who holds seat `i` and with what weight in epoch `epoch` (this epoch or the next).
    function seatAt(uint256 i, uint64 epoch) external view returns (address member, uint256 weight) {
        member = _member(_seats[i], epoch);
        if (member != address(0)) weight = _weightAt(_weights[member], epoch);
    }

    /// @notice An account's draw weight in `epoch` (this epoch or the next).
    function weightAt(address account, uint64 epoch) external view returns (uint256) {
        return _weightAt(_weights[account], epoch);
    }

    // ---------------------------------------------------------------- for the escrow

    /// Sets `account`'s draw weight from the next epoch on, and its seat to match: a weight of
    /// zero gives the seat up, a positive weight without a seat asks for one.
    function _setWeight(address account, uint256 weight) internal {
        Weight storage w = _weights[account];
        uint64 epoch = currentEpoch();
        if (epoch >= w.nextEpoch) w.weight = w.next;
        w.next = uint128(weight);
        w.nextEpoch = epoch + 1;
        uint256 seat = seatOf[account];
        if (weight == 0 && seat != 0) {
            _setSeat(_seats[seat - 1], address(0), epoch);
            seatOf[account] = 0;
            emit PoolMembership(account, false, epoch + 1);
        } else if (weight != 0 && seat == 0) {
            _join(account, weight, epoch);
        }
    }

    /// Draws `count` distinct members weighted by stake, never `a` or `b`, from this epoch's
    /// seats; returns fewer when fewer are eligible. One pass reads the seats; the rest is memory.
    function _draw(bytes32 seed, address a, address b, uint256 count)
        internal
        view
        returns (address[] memory picked)
    {
        uint64 epoch = currentEpoch();
        uint256 n = _seats.length;
        address[] memory who = new address[](n);
        uint256[] memory weight = new uint256[](n);
        uint256 total = 0;
        uint256 m = 0;
        for (uint256 i = 0; i < n; ++i) {
            address p = _member(_seats[i], epoch);
            if (p == address(0) || p == a || p == b) continue;
            uint256 w = _weightAt(_weights[p], epoch);
            if (w == 0) continue;
            who[m] = p;
            weight[m] = w;
            total += w;
            ++m;
        }
        if (count > m) count = m;
        picked = new address[](count);
        for (uint256 k = 0; k < count; ++k) {
            uint256 r = uint256(keccak256(abi.encode(seed, k))) % total;
            for (uint256 i = 0; i < m; ++i) {
                uint256 w = weight[i];
                if (r < w) {
                    picked[k] = who[i];
                    total -= w;
                    weight[i] = 0; // drawn without replacement
                    break;
                }
                r -= w;
            }
        }
    }

    /// Asks the pool for a seat again (after a refusal or an eviction), with the current stake.
    function _rejoin(address account) internal {
        uint256 weight = _weights[account].next;
        if (weight != 0 && seatOf[account] == 0) _join(account, weight, currentEpoch());
    }

    // ---------------------------------------------------------------- internals

    function _join(address account, uint256 weight, uint64 epoch) private {
        uint64 from = epoch + 1;
        uint256 n = _seats.length;
        if (n < MAX_POOL) {
            _seats.push(Seat({current: address(0), switchEpoch: from, next: account}));
            seatOf[account] = n + 1;
            emit PoolMembership(account, true, from);
            return;
        }
        // Full: an empty seat, else the seat of the smallest member next epoch.
        uint256 smallest = type(uint256).max;
        uint256 at = 0;
        for (uint256 i = 0; i < n; ++i) {
            address p = _member(_seats[i], from);
            if (p == address(0)) {
                smallest = 0;
                at = i;
                break;
            }
            uint256 w = _weightAt(_weights[p], from);
            if (w < smallest) {
                smallest = w;
                at = i;
            }
        }
        if (weight <= smallest) {
            emit PoolRefused(account, weight, smallest);
            return;
        }
        Seat storage s = _seats[at];
        address out = _member(s, from);
        if (out != address(0)) {
            seatOf[out] = 0;
            emit PoolEvicted(out, account, from);
            emit PoolMembership(out, false, from);
        }
        _setSeat(s, account, epoch);
        seatOf[account] = at + 1;
        emit PoolMembership(account, true, from);
    }

    function _setSeat(Seat storage s, address who, uint64 epoch) private {
        if (epoch >= s.switchEpoch) s.current = s.next;
        s.next = who;
        s.switchEpoch = epoch + 1;
    }

    function _member(Seat storage s, uint64 epoch) private view returns (address) {
        return epoch >= s.switchEpoch ? s.next : s.current;
    }

    function _weightAt(Weight storage w, uint64 epoch) private view returns (uint256) {
        return epoch >= w.nextEpoch ? w.next : w.weight;
    }
}
