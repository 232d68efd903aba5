// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {Test} from "./utils/Test.sol";
import {Vm} from "./utils/Vm.sol";
import {MockToken} from "../src/MockToken.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";

/// Drives the escrow through random sequences of every user action and keeps ghost books that
/// the invariants compare against the contract.
contract EscrowHandler is Test {
    SietchEscrow internal immutable escrow;
    MockToken internal immutable token;
    uint256 internal immutable buyerPk;
    uint256 internal immutable providerPk;
    uint256 internal immutable verifierPk0;
    address internal immutable buyer;
    address internal immutable provider;

    bytes32[] public channelIds;
    bytes32[] public ticketIds;
    address[] public actors;
    mapping(bytes32 => uint256) public maxSigned;
    mapping(bytes32 => uint256) public ticketPaid;
    mapping(bytes32 => bool) public closed;
    mapping(bytes32 => uint256) public paidAtClose;
    mapping(bytes32 => uint256) public ticketPaidAfterClose;
    mapping(bytes32 => bytes32) internal jobOf;
    /// Per channel: how far the cumulative line is covered by what was claimed (the highest voucher
    /// claimed, the end of every ticket that paid). Paying beyond it pays some job twice.
    mapping(bytes32 => uint256) public covered;
    /// Per channel: what the provider received from it (vouchers and tickets; bonds not counted).
    mapping(bytes32 => uint256) public received;
    /// Per ticket: where its job's range ends on the cumulative line.
    mapping(bytes32 => uint256) internal endOf;
    /// Counts anything that should never happen (a wrong payout, a second settlement, a payment
    /// from a closed channel); the invariants require it to stay zero.
    uint256 public violations;
    string public lastViolation;
    uint256 internal jobs;

    constructor(
        SietchEscrow escrow_,
        MockToken token_,
        uint256 buyerPk_,
        uint256 providerPk_,
        uint256 verifierPk0_,
        address[] memory actors_
    ) {
        escrow = escrow_;
        token = token_;
        buyerPk = buyerPk_;
        providerPk = providerPk_;
        verifierPk0 = verifierPk0_;
        buyer = vm.addr(buyerPk_);
        provider = vm.addr(providerPk_);
        actors = actors_;
    }

    function channelCount() external view returns (uint256) {
        return channelIds.length;
    }

    function ticketCount() external view returns (uint256) {
        return ticketIds.length;
    }

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function _violation(string memory what) internal {
        violations += 1;
        lastViolation = what;
    }

    function _sig(uint256 pk, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function _pickChannel(uint256 seed) internal view returns (bytes32) {
        if (channelIds.length == 0) return bytes32(0);
        return channelIds[seed % channelIds.length];
    }

    function _pickTicket(uint256 seed) internal view returns (bytes32) {
        if (ticketIds.length == 0) return bytes32(0);
        return ticketIds[seed % ticketIds.length];
    }

    // ------------------------------------------------------------------ actions

    function open(uint256 amount) external {
        amount = bound(amount, 1e18, 100e18);
        vm.prank(buyer);
        channelIds.push(escrow.openChannel(provider, amount));
    }

    function topUp(uint256 seed, uint256 amount) external {
        bytes32 ch = _pickChannel(seed);
        amount = bound(amount, 1, 50e18);
        vm.prank(buyer);
        try escrow.topUp(ch, amount) {} catch {}
    }

    function claim(uint256 seed, uint256 cumulative) external {
        bytes32 ch = _pickChannel(seed);
        if (ch == bytes32(0)) return;
        (,, SietchEscrow.ChannelState st,, uint128 reserved, uint128 dep, uint128 paid) = escrow.channels(ch);
        cumulative = bound(cumulative, 0, 2 * uint256(dep) + 1);
        if (cumulative > maxSigned[ch]) maxSigned[ch] = cumulative;
        SietchEscrow.Voucher memory v = SietchEscrow.Voucher(ch, cumulative);
        bytes memory sig = _sig(buyerPk, escrow.hashVoucher(v));
        uint256 owed = cumulative > paid ? cumulative - paid : 0;
        uint256 available = dep - paid - reserved;
        uint256 expected = owed < available ? owed : available;
        uint256 before = token.balanceOf(provider);
        try escrow.claim(v, sig) {
            if (st == SietchEscrow.ChannelState.Closed) _violation("claim paid from a closed channel");
            if (token.balanceOf(provider) - before != expected) _violation("claim paid a wrong amount");
            received[ch] += expected;
            if (cumulative > covered[ch]) covered[ch] = cumulative;
        } catch {
            if (st != SietchEscrow.ChannelState.Closed && expected != 0) _violation("claim refused money owed");
        }
    }

    function startClose(uint256 seed, bool byProvider) external {
        bytes32 ch = _pickChannel(seed);
        vm.prank(byProvider ? provider : buyer);
        try escrow.startClose(ch) {} catch {}
    }

    function finalizeClose(uint256 seed) external {
        bytes32 ch = _pickChannel(seed);
        try escrow.finalizeClose(ch) {
            (,,,,,, uint128 paid) = escrow.channels(ch);
            closed[ch] = true;
            paidAtClose[ch] = paid;
        } catch {}
    }

    /// The provider claims a ticket. Its job usually starts at the channel's cursor (the provider
    /// claimed the buyer's latest voucher first); sometimes below it (a voucher already paid part or
    /// all of the job: the double-payment attempt), sometimes above it (vouchers not claimed yet),
    /// and sometimes after the ticket's deadline. Each refusal and each reservation is checked.
    function claimTicket(uint256 seed, uint256 amount, uint256 before, uint8 mode) external {
        bytes32 ch = _pickChannel(seed);
        if (ch == bytes32(0)) return;
        amount = bound(amount, 1, 20e18);
        (,,,, uint128 reservedBefore,, uint128 paid) = escrow.channels(ch);
        uint256 cb = paid;
        if (mode % 4 == 2) cb = bound(before, 0, paid);
        else if (mode % 4 == 3) cb = paid + bound(before, 1, 10e18);
        bool late = mode % 16 >= 14;
        uint64 deadline = late ? uint64(block.timestamp - 1) : uint64(block.timestamp + 1 days);
        SietchEscrow.Ticket memory t = SietchEscrow.Ticket(
            keccak256(abi.encode("job", jobs++)), keccak256("spec"), ch, cb, amount, deadline, bytes32(0)
        );
        (bool ok, bytes32 id) = _tryTicket(t, amount);
        if (!ok) return;
        if (late) _violation("expired ticket claimed");
        if (cb > paid) _violation("ticket claimed above the cursor");
        if (cb + amount <= paid) _violation("ticket claimed for a job vouchers paid");
        (,,,, uint128 reservedNow,,) = escrow.channels(ch);
        if (reservedNow - reservedBefore != cb + amount - paid) _violation("ticket reserved a wrong amount");
        ticketIds.push(id);
        jobOf[id] = t.jobId;
        endOf[id] = cb + amount;
    }

    function _tryTicket(SietchEscrow.Ticket memory t, uint256 amount) internal returns (bool, bytes32) {
        SietchEscrow.ResultCommitment memory r =
            SietchEscrow.ResultCommitment(t.jobId, keccak256("spec"), keccak256("good"), 7, 1, amount);
        bytes memory ts = _sig(buyerPk, escrow.hashTicket(t));
        bytes memory rs = _sig(providerPk, escrow.hashResult(r));
        try escrow.claimTicket(t, ts, r, rs) returns (bytes32 id) {
            return (true, id);
        } catch {
            return (false, bytes32(0));
        }
    }

    /// Books a settled ticket: it pays exactly the part of its range above the cursor, or nothing
    /// (refunded), and the cursor moves to the range's end. `exact`: undisputed, so `gained` (the
    /// provider's balance change) is the payment.
    function _settled(bytes32 id, uint256 paidBefore, uint256 gained, bool exact) internal {
        bytes32 ch = escrow.tickets(id).channelId;
        (,,,,,, uint128 paidNow) = escrow.channels(ch);
        uint256 end = endOf[id];
        uint256 owed = end > paidBefore ? end - paidBefore : 0;
        uint256 pay = paidNow - paidBefore;
        if (pay != owed && pay != 0) _violation("ticket paid a wrong amount");
        if (pay != 0 && paidNow != end) _violation("ticket left the cursor off its range's end");
        if (exact && (pay != owed || gained != owed)) _violation("undisputed ticket paid a wrong amount");
        if (pay != 0 || (exact && owed == 0)) {
            if (end > covered[ch]) covered[ch] = end;
        }
        received[ch] += pay;
        ticketPaid[ch] += pay;
        if (closed[ch]) ticketPaidAfterClose[ch] += pay;
    }

    function _paid(bytes32 id) internal view returns (uint256 paid) {
        (,,,,,, paid) = escrow.channels(escrow.tickets(id).channelId);
    }

    function finalizeTicket(uint256 seed) external {
        bytes32 id = _pickTicket(seed);
        uint256 before = token.balanceOf(provider);
        uint256 paidBefore = _paid(id);
        bool wasSettled = escrow.tickets(id).state == SietchEscrow.TicketState.Settled;
        try escrow.finalizeTicket(id) {
            if (wasSettled) _violation("ticket settled twice");
            _settled(id, paidBefore, token.balanceOf(provider) - before, true);
        } catch {}
    }

    function dispute(uint256 seed) external {
        bytes32 id = _pickTicket(seed);
        vm.prank(buyer);
        try escrow.dispute(id) {} catch {}
    }

    function draw(uint256 seed) external {
        bytes32 id = _pickTicket(seed);
        vm.roll(block.number + 2);
        try escrow.drawVerifiers(id) {} catch {}
    }

    function vote(uint256 seed, uint256 which, bool agree) external {
        bytes32 id = _pickTicket(seed);
        if (id == bytes32(0)) return;
        SietchEscrow.TicketRecord memory t = escrow.tickets(id);
        if (t.drawn == 0) return;
        address v = t.verifiers[which % t.drawn];
        uint256 pk;
        for (uint256 i = 0; i < actors.length; ++i) {
            if (actors[i] == v) pk = verifierPk0 + i;
        }
        if (pk == 0) return;
        SietchEscrow.ResultCommitment memory r = SietchEscrow.ResultCommitment(
            jobOf[id], keccak256("spec"), agree ? keccak256("good") : keccak256("bad"), 7, 1, 0
        );
        bytes memory sig = _sig(pk, escrow.hashResult(r));
        try escrow.submitVerdict(id, r, sig) {} catch {}
    }

    function resolve(uint256 seed) external {
        bytes32 id = _pickTicket(seed);
        uint256 paidBefore = _paid(id);
        bool wasSettled = escrow.tickets(id).state == SietchEscrow.TicketState.Settled;
        try escrow.resolve(id) {
            if (wasSettled) _violation("ticket resolved twice");
            _settled(id, paidBefore, 0, false);
        } catch {}
    }

    function requestUnstake(uint256 who, uint256 amount) external {
        address a = actors[who % actors.length];
        (, uint128 s,,,,) = escrow.accounts(a);
        if (s == 0) return;
        vm.prank(a);
        escrow.requestUnstake(bound(amount, 1, s));
    }

    function unstake(uint256 who) external {
        vm.prank(actors[who % actors.length]);
        try escrow.unstake() {} catch {}
    }

    function restake(uint256 who, uint256 amount) external {
        address a = actors[who % actors.length];
        amount = bound(amount, 1, 500e18);
        token.mint(a, amount);
        vm.startPrank(a);
        token.approve(address(escrow), amount);
        escrow.stake(amount);
        vm.stopPrank();
    }

    function warp(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 1, 2 days));
    }
}

contract InvariantTest is Base {
    EscrowHandler internal handler;

    function setUp() public override {
        super.setUp();
        address[] memory actors = new address[](N_VERIFIERS + 1);
        for (uint256 i = 0; i < N_VERIFIERS; ++i) {
            actors[i] = verifiers[i];
        }
        actors[N_VERIFIERS] = provider;
        handler = new EscrowHandler(escrow, token, BUYER_PK, PROVIDER_PK, VERIFIER_PK0, actors);
        vm.prank(buyer);
        token.approve(address(escrow), type(uint256).max);
        targetContract(address(handler));
    }

    /// The handler really reaches every state: a fixed walk through it settles a ticket by
    /// dispute, so the random runs below are not vacuous.
    function test_handlerReachesDisputeSettlement() public {
        handler.open(50e18);
        handler.claimTicket(0, 5e18, 0, 0);
        assertEq(handler.ticketCount(), 1, "ticket claimed");
        handler.dispute(0);
        handler.draw(0);
        bytes32 id = handler.ticketIds(0);
        assertTrue(escrow.tickets(id).state == SietchEscrow.TicketState.Drawn, "drawn");
        handler.vote(0, 0, false);
        handler.vote(0, 1, false);
        handler.resolve(0);
        assertTrue(escrow.tickets(id).state == SietchEscrow.TicketState.Settled, "settled");
        assertEq(handler.violations(), 0, "no violation");
        invariant_balanceEqualsChannelsStakesBonds();
        afterInvariant();
    }

    /// The contract holds exactly what its books say: open channels, stakes and bonds.
    function invariant_balanceEqualsChannelsStakesBonds() public view {
        uint256 books = escrow.totalBonds();
        for (uint256 i = 0; i < handler.channelCount(); ++i) {
            (,,,,, uint128 dep, uint128 paid) = escrow.channels(handler.channelIds(i));
            books += dep - paid;
        }
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            (, uint128 s, uint128 u,,,) = escrow.accounts(handler.actors(i));
            books += uint256(s) + u;
        }
        assertEq(token.balanceOf(address(escrow)), books, "balance == channels + stakes + bonds");
    }

    /// Vouchers never pay past the highest cumulative the buyer signed (tickets count on top).
    function invariant_voucherNeverPaysPastCumulative() public view {
        for (uint256 i = 0; i < handler.channelCount(); ++i) {
            bytes32 ch = handler.channelIds(i);
            (,,,,, uint128 dep, uint128 paid) = escrow.channels(ch);
            assertLe(paid, handler.maxSigned(ch) + handler.ticketPaid(ch), "paid <= signed + tickets");
            assertLe(paid, dep, "paid <= deposit");
        }
    }

    /// Nothing is paid twice across tickets and vouchers: what a channel paid its provider never
    /// goes past the part of the cumulative line that claimed vouchers and paying tickets cover,
    /// and it is exactly what the provider received from the channel.
    function invariant_nothingPaidTwice() public view {
        for (uint256 i = 0; i < handler.channelCount(); ++i) {
            bytes32 ch = handler.channelIds(i);
            (,,,,,, uint128 paid) = escrow.channels(ch);
            assertLe(paid, handler.covered(ch), "paid <= covered by vouchers and tickets");
            assertEq(paid, handler.received(ch), "paid == received by the provider");
        }
    }

    /// A finalized channel pays nothing more, except tickets claimed before it closed.
    function invariant_finalizedChannelPaysNothingMore() public view {
        for (uint256 i = 0; i < handler.channelCount(); ++i) {
            bytes32 ch = handler.channelIds(i);
            if (!handler.closed(ch)) continue;
            (,,,,,, uint128 paid) = escrow.channels(ch);
            assertEq(paid, handler.paidAtClose(ch) + handler.ticketPaidAfterClose(ch), "closed channel paid more");
        }
    }

    /// Nothing was paid twice or wrongly along the way.
    function invariant_noViolations() public view {
        if (handler.violations() != 0) fail(handler.lastViolation());
    }

    /// Every deadline leaves the money claimable: after each run, letting every window pass and
    /// calling every permissionless settlement empties the contract to its rightful owners.
    function afterInvariant() public {
        // How far this run got (printed with -vv): states reached before the drain.
        uint256[5] memory states;
        for (uint256 i = 0; i < handler.ticketCount(); ++i) {
            states[uint256(escrow.tickets(handler.ticketIds(i)).state)] += 1;
        }
        emit log_named_uint(
            "tickets claimed/disputed/drawn/settled", states[1] * 1e9 + states[2] * 1e6 + states[3] * 1e3 + states[4]
        );
        for (uint256 i = 0; i < handler.ticketCount(); ++i) {
            bytes32 id = handler.ticketIds(i);
            SietchEscrow.TicketState st = escrow.tickets(id).state;
            if (st == SietchEscrow.TicketState.Disputed) {
                vm.roll(block.number + 2);
                escrow.drawVerifiers(id);
                st = SietchEscrow.TicketState.Drawn;
            }
            vm.warp(block.timestamp + CHALLENGE + VERDICT + 1);
            if (st == SietchEscrow.TicketState.Claimed) escrow.finalizeTicket(id);
            if (st == SietchEscrow.TicketState.Drawn) escrow.resolve(id);
        }
        for (uint256 i = 0; i < handler.channelCount(); ++i) {
            bytes32 ch = handler.channelIds(i);
            (,, SietchEscrow.ChannelState st,,,,) = escrow.channels(ch);
            if (st == SietchEscrow.ChannelState.Open) {
                vm.prank(buyer);
                escrow.startClose(ch);
            }
        }
        vm.warp(block.timestamp + CLOSE_DELAY);
        for (uint256 i = 0; i < handler.channelCount(); ++i) {
            bytes32 ch = handler.channelIds(i);
            (,, SietchEscrow.ChannelState st,,,,) = escrow.channels(ch);
            if (st == SietchEscrow.ChannelState.Closing) escrow.finalizeClose(ch);
        }
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            address a = handler.actors(i);
            (, uint128 s,,,,) = escrow.accounts(a);
            if (s != 0) {
                vm.prank(a);
                escrow.requestUnstake(s);
            }
        }
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            address a = handler.actors(i);
            (,, uint128 u,,,) = escrow.accounts(a);
            if (u != 0) {
                vm.prank(a);
                escrow.unstake();
            }
        }
        assertEq(token.balanceOf(address(escrow)), 0, "everything was claimable");
    }
}
