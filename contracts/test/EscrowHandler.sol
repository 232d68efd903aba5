// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {MockToken} from "../src/MockToken.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";

/// Drives the escrow through random sequences of every user action and keeps ghost books that
/// the invariants compare against the contract. The cast: a buyer that disputes whatever it likes;
/// an honest provider whose results are always right (and which, when drawn, always votes right);
/// a cheating provider whose results are always wrong (and which never votes); a lying verifier
/// that votes however it likes; honest verifiers that vote right or not at all.
contract EscrowHandler is Test {
    SietchEscrow internal immutable escrow;
    MockToken internal immutable token;
    uint256 internal immutable buyerPk;
    address internal immutable buyer;
    address public immutable honest;
    address public immutable cheat;
    address public immutable liar;

    bytes32 internal constant RIGHT = keccak256("good");
    bytes32 internal constant WRONG = keccak256("wrong");

    bytes32[] public channelIds;
    bytes32[] public ticketIds;
    /// Every staker: the honest provider, the cheat, then the verifiers (the liar first).
    address[] public actors;
    mapping(address => uint256) internal pkOf;
    mapping(bytes32 => address) public providerOf;
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
    /// What the honest provider put into stake and took out by unstaking: nothing else may move it.
    uint256 public honestIn;
    uint256 public honestOut;
    /// Disputes of the cheat that ended, and disputes that paid the honest provider (coverage).
    uint256 public cheatDisputesSettled;
    uint256 public honestDisputesPaid;
    /// Undelivered disputes that ended with the provider right, and the others (coverage).
    uint256 public undeliveredRightSettled;
    uint256 public undeliveredOtherSettled;
    /// Counts anything that should never happen (a wrong payout, a second settlement, a payment
    /// from a closed channel, a wrong result winning); the invariants require it to stay zero.
    uint256 public violations;
    string public lastViolation;
    uint256 internal jobs;

    constructor(SietchEscrow escrow_, MockToken token_, uint256 buyerPk_, uint256[] memory pks) {
        escrow = escrow_;
        token = token_;
        buyerPk = buyerPk_;
        buyer = vm.addr(buyerPk_);
        for (uint256 i = 0; i < pks.length; ++i) {
            address a = vm.addr(pks[i]);
            actors.push(a);
            pkOf[a] = pks[i];
        }
        honest = actors[0];
        cheat = actors[1];
        liar = actors[2];
        honestIn = _held(honest);
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

    function _held(address a) internal view returns (uint256) {
        (, uint128 s, uint128 u,,) = escrow.accounts(a);
        return uint256(s) + u;
    }

    /// Everything `a` owns, in the escrow or out of it.
    function _wealth(address a) internal view returns (uint256) {
        return token.balanceOf(a) + escrow.balances(a) + _held(a);
    }

    function _paid(bytes32 id) internal view returns (uint256 paid) {
        (,,,,,, paid) = escrow.channels(escrow.tickets(id).channelId);
    }

    function _providerOfTicket(bytes32 id) internal view returns (address) {
        return providerOf[escrow.tickets(id).channelId];
    }

    // ------------------------------------------------------------------ channels and vouchers

    function open(uint256 amount, bool toCheat) external {
        amount = bound(amount, 1e18, 100e18);
        address p = toCheat ? cheat : honest;
        vm.prank(buyer);
        try escrow.openChannel(p, amount) returns (bytes32 ch) {
            channelIds.push(ch);
            providerOf[ch] = p;
        } catch {}
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
        address p = providerOf[ch];
        (,, SietchEscrow.ChannelState st,, uint128 reserved, uint128 dep, uint128 paid) = escrow.channels(ch);
        cumulative = bound(cumulative, 0, 2 * uint256(dep) + 1);
        if (cumulative > maxSigned[ch]) maxSigned[ch] = cumulative;
        SietchEscrow.Voucher memory v = SietchEscrow.Voucher(ch, cumulative);
        bytes memory sig = _sig(buyerPk, escrow.hashVoucher(v));
        uint256 owed = cumulative > paid ? cumulative - paid : 0;
        uint256 available = dep - paid - reserved;
        uint256 expected = owed < available ? owed : available;
        uint256 before = token.balanceOf(p);
        try escrow.claim(v, sig) {
            if (st == SietchEscrow.ChannelState.Closed) _violation("claim paid from a closed channel");
            if (token.balanceOf(p) - before != expected) _violation("claim paid a wrong amount");
            received[ch] += expected;
            if (cumulative > covered[ch]) covered[ch] = cumulative;
        } catch {
            if (st != SietchEscrow.ChannelState.Closed && expected != 0) _violation("claim refused money owed");
        }
    }

    function startClose(uint256 seed, bool byProvider) external {
        bytes32 ch = _pickChannel(seed);
        vm.prank(byProvider ? providerOf[ch] : buyer);
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

    // ------------------------------------------------------------------ tickets

    /// The channel's provider claims a ticket. Its job usually starts at the channel's cursor (the
    /// provider claimed the buyer's latest voucher first); sometimes below it (a voucher already
    /// paid part or all of the job: the double-payment attempt), sometimes above it (vouchers not
    /// claimed yet), and sometimes after the ticket's deadline. Each refusal and reservation is checked.
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
            keccak256(abi.encode("job", jobs++, seed)),
            keccak256("spec"),
            ch,
            cb,
            amount,
            deadline,
            bytes32(0),
            type(uint128).max,
            0
        );
        (bool ok, bytes32 id) = _tryTicket(t, amount, providerOf[ch]);
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

    function _tryTicket(SietchEscrow.Ticket memory t, uint256 amount, address p) internal returns (bool, bytes32) {
        SietchEscrow.ResultCommitment memory r =
            SietchEscrow.ResultCommitment(t.jobId, keccak256("spec"), t.channelId, p == cheat ? WRONG : RIGHT, 7, 1, amount);
        bytes memory ts = _sig(buyerPk, escrow.hashTicket(t));
        bytes memory rs = _sig(pkOf[p], escrow.hashResult(r));
        vm.prank(p);
        try escrow.claimTicket(t, ts, r, rs) returns (bytes32 id) {
            return (true, id);
        } catch {
            return (false, bytes32(0));
        }
    }

    /// Books a settled ticket: it pays exactly the part of its range above the cursor, or nothing
    /// (refunded), and the cursor moves to the range's end. `exact`: undisputed, so `gained` (what
    /// the provider was credited) is the payment.
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

    function _finalize(bytes32 id) internal {
        address p = _providerOfTicket(id);
        uint256 before = escrow.balances(p);
        uint256 paidBefore = _paid(id);
        bool wasSettled = escrow.tickets(id).state == SietchEscrow.TicketState.Settled;
        try escrow.finalizeTicket(id) {
            if (wasSettled) _violation("ticket settled twice");
            _settled(id, paidBefore, escrow.balances(p) - before, true);
        } catch {}
    }

    function finalizeTicket(uint256 seed) external {
        _finalize(_pickTicket(seed));
    }

    // ------------------------------------------------------------------ disputes

    function dispute(uint256 seed) external {
        bytes32 id = _pickTicket(seed);
        vm.prank(buyer);
        try escrow.dispute(id) {} catch {}
    }

    /// The buyer says it never received the output (it may lie: the honest provider's output is
    /// right, and the drawn verifiers vote on it as on any dispute).
    function disputeUndelivered(uint256 seed) external {
        bytes32 id = _pickTicket(seed);
        vm.prank(buyer);
        try escrow.disputeUndelivered(id) {} catch {}
    }

    /// Checks what a settled dispute credited the buyer and the provider: wrong or undecided give
    /// the buyer at least its reservation and bond back; an undelivered dispute with the provider
    /// right pays the majority verifiers from the ticket's pay first and the bond only for the
    /// rest, gives the provider max(0, pay - fees) and none of the bond, and the buyer the rest of
    /// the bond (plus, on a closed channel, what the ticket did not pay).
    function _checkDisputeCredits(
        SietchEscrow.TicketRecord memory t,
        uint256 pay,
        uint256 buyerGain,
        uint256 providerGain
    ) internal {
        uint256 bond = escrow.disputeBond();
        if (t.votesFor < 2) {
            if (pay != 0) _violation("a dispute not won paid the provider");
            if (buyerGain < uint256(t.amount) + bond) _violation("a dispute not won did not refund the buyer");
            if (t.undelivered) undeliveredOtherSettled += 1;
            return;
        }
        if (!t.undelivered) return;
        undeliveredRightSettled += 1;
        uint256 fees;
        for (uint256 i = 0; i < t.drawn; ++i) {
            if (t.agreeMask & (1 << i) != 0) fees += escrow.verifierFee();
        }
        (,, SietchEscrow.ChannelState st,,,,) = escrow.channels(t.channelId);
        uint256 refund = st == SietchEscrow.ChannelState.Closed ? t.amount - pay : 0;
        if (providerGain != (pay > fees ? pay - fees : 0)) _violation("undelivered: provider paid a wrong amount");
        if (buyerGain != refund + bond - (fees > pay ? fees - pay : 0)) {
            _violation("undelivered: buyer got a wrong share of the bond");
        }
    }

    /// Runs drawVerifiers (or resolve) on `id` and books what it settled. The cheat (always wrong)
    /// must never come out of a step of its own dispute richer, nor be paid for the ticket.
    function _disputeStep(bytes32 id, bool isResolve) internal {
        bool wasSettled = escrow.tickets(id).state == SietchEscrow.TicketState.Settled;
        uint256 paidBefore = _paid(id);
        address p = _providerOfTicket(id);
        bool ofCheat = p == cheat;
        uint256 cheatBefore = _wealth(cheat);
        uint256 buyerBefore = escrow.balances(buyer);
        uint256 providerBefore = escrow.balances(p);
        if (isResolve) {
            try escrow.resolve(id) {}
            catch {
                return;
            }
        } else {
            try escrow.drawVerifiers(id) {}
            catch {
                return;
            }
        }
        SietchEscrow.TicketRecord memory t = escrow.tickets(id);
        if (ofCheat && _wealth(cheat) > cheatBefore) _violation("a wrong result gained from its dispute");
        if (t.state == SietchEscrow.TicketState.Settled) {
            if (wasSettled) _violation("ticket settled twice");
            if (ofCheat && _paid(id) != paidBefore) _violation("a wrong result was paid after a dispute");
            if (ofCheat) cheatDisputesSettled += 1;
            if (!ofCheat && _paid(id) != paidBefore) honestDisputesPaid += 1;
            _checkDisputeCredits(
                t, _paid(id) - paidBefore, escrow.balances(buyer) - buyerBefore, escrow.balances(p) - providerBefore
            );
            _settled(id, paidBefore, 0, false);
        } else if (t.state == SietchEscrow.TicketState.Drawn && !isResolve) {
            // The honest provider, when drawn, votes at once and right.
            for (uint256 i = 0; i < t.drawn; ++i) {
                if (t.verifiers[i] == honest) _submit(id, honest, RIGHT);
            }
        }
    }

    /// Draws once the draw block is mined (the call may also re-arm, wait, or settle undecided).
    function draw(uint256 seed) external {
        bytes32 id = _pickTicket(seed);
        SietchEscrow.TicketRecord memory t = escrow.tickets(id);
        if (t.state != SietchEscrow.TicketState.Disputed) return;
        if (block.number <= t.drawBlock) vm.roll(t.drawBlock + 1);
        _disputeStep(id, false);
    }

    function _submit(bytes32 id, address v, bytes32 outputHash) internal {
        SietchEscrow.ResultCommitment memory r =
            SietchEscrow.ResultCommitment(jobOf[id], keccak256("spec"), escrow.tickets(id).channelId, outputHash, 7, 1, 0);
        bytes memory sig = _sig(pkOf[v], escrow.hashResult(r));
        try escrow.submitVerdict(id, r, sig) {} catch {}
    }

    /// A drawn verifier votes: honest ones (and the honest provider) the right output; the liar
    /// agrees or disagrees with the provider as it likes; the cheat never votes.
    function vote(uint256 seed, uint256 which, bool agree) external {
        bytes32 id = _pickTicket(seed);
        if (id == bytes32(0)) return;
        SietchEscrow.TicketRecord memory t = escrow.tickets(id);
        if (t.drawn == 0) return;
        _voteAs(id, t, t.verifiers[which % t.drawn], agree);
    }

    function _voteAs(bytes32 id, SietchEscrow.TicketRecord memory t, address v, bool agree) internal {
        if (v == cheat) return;
        bytes32 out = RIGHT;
        if (v == liar) out = agree ? t.outputHash : keccak256("bad");
        _submit(id, v, out);
    }

    function resolve(uint256 seed) external {
        _disputeStep(_pickTicket(seed), true);
    }

    /// Every permissionless exit, in order, until each ticket settles (what afterInvariant runs);
    /// the drawn verifiers vote as they would (the liar against the honest provider and for the
    /// cheat), except the cheat, which never does, and the honest verifiers in idle rounds (so
    /// some disputes run out of rounds and end undecided).
    function settleAll() external {
        for (uint256 i = 0; i < ticketIds.length; ++i) {
            bytes32 id = ticketIds[i];
            for (uint256 k = 0; k < 16; ++k) {
                SietchEscrow.TicketRecord memory t = escrow.tickets(id);
                if (t.state == SietchEscrow.TicketState.Settled) break;
                if (t.state != SietchEscrow.TicketState.Drawn && block.timestamp <= t.deadline) {
                    vm.warp(uint256(t.deadline) + 1);
                }
                if (t.state == SietchEscrow.TicketState.Claimed) {
                    _finalize(id);
                } else if (t.state == SietchEscrow.TicketState.Disputed) {
                    if (block.number <= t.drawBlock) vm.roll(t.drawBlock + 1);
                    _disputeStep(id, false);
                } else {
                    if (block.timestamp <= t.deadline) {
                        // In about half the rounds the honest verifiers stay away; the liar never does.
                        bool idle = uint256(keccak256(abi.encode(id, t.round))) % 2 == 0;
                        for (uint256 j = 0; j < t.drawn; ++j) {
                            if (idle && t.verifiers[j] != liar) continue;
                            _voteAs(id, t, t.verifiers[j], _providerOfTicket(id) == cheat);
                        }
                    }
                    SietchEscrow.TicketRecord memory v = escrow.tickets(id);
                    if (v.votesFor < 2 && v.votesAgainst < 2 && block.timestamp <= t.deadline) {
                        vm.warp(uint256(t.deadline) + 1); // no majority: let the round end
                    }
                    _disputeStep(id, true);
                }
            }
            if (escrow.tickets(id).state != SietchEscrow.TicketState.Settled) _violation("a ticket never settled");
        }
    }

    // ------------------------------------------------------------------ stake and credits

    function requestUnstake(uint256 who, uint256 amount) external {
        address a = actors[who % actors.length];
        (, uint128 s,,,) = escrow.accounts(a);
        if (s == 0) return;
        vm.prank(a);
        escrow.requestUnstake(bound(amount, 1, s));
    }

    function unstake(uint256 who) external {
        address a = actors[who % actors.length];
        uint256 before = token.balanceOf(a);
        vm.prank(a);
        try escrow.unstake() {
            if (a == honest) honestOut += token.balanceOf(a) - before;
        } catch {}
    }

    function restake(uint256 who, uint256 amount) external {
        address a = actors[who % actors.length];
        amount = bound(amount, 1, 500e18);
        token.mint(a, amount);
        vm.startPrank(a);
        token.approve(address(escrow), amount);
        escrow.stake(amount);
        vm.stopPrank();
        if (a == honest) honestIn += amount;
    }

    function joinPool(uint256 who) external {
        vm.prank(actors[who % actors.length]);
        escrow.joinPool();
    }

    /// An actor (or, for the last index, the buyer) withdraws its credit.
    function withdraw(uint256 who) external {
        who = who % (actors.length + 1);
        vm.prank(who == actors.length ? buyer : actors[who]);
        try escrow.withdraw() {} catch {}
    }

    function burn() external {
        try escrow.burn() {} catch {}
    }

    function warp(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 1, 2 days));
    }

    function roll(uint256 blocks) external {
        vm.roll(block.number + bound(blocks, 1, 3 * uint256(escrow.epochBlocks())));
    }
}
