// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";
import {Operators} from "../src/Operators.sol";

/// A cold owner and a hot operator (issue 22, item 3): the fixture's provider is the owner, and
/// names `op`, whose key the node holds.
abstract contract OperatorBase is Base {
    uint256 internal constant OPERATOR_PK = 0x0BE7A70;
    uint256 internal constant THIEF_PK = 0x7E1F;
    address internal op;

    function setUp() public virtual override {
        super.setUp();
        op = vm.addr(OPERATOR_PK);
        vm.prank(provider);
        escrow.setOperator(op);
    }

    /// The operator claims ticket `t` with a result it signed itself ("good" output).
    function _operatorClaims(bytes32 ch, bytes32 job, uint256 amount) internal returns (bytes32) {
        return _claimTicketAs(OPERATOR_PK, _ticket(ch, job, amount), amount, "");
    }

    /// Disputes `id` and lets two drawn verifiers vote `outputHash`, then resolves.
    function _decide(bytes32 id, bytes32 job, bytes32 outputHash) internal returns (address[3] memory d) {
        d = _disputeAndDraw(id);
        _vote(id, job, d[0], outputHash);
        _vote(id, job, d[1], outputHash);
        escrow.resolve(id);
    }
}

/// What an operator may do for its owner, and that the money lands with the owner.
contract OperatorTest is OperatorBase {
    bytes32 internal constant JOB = keccak256("operated job");

    function test_setOperator_namesReplacesAndRevokes() public {
        assertEq(escrow.operatorOf(provider), op, "named");
        assertEq(escrow.ownerOf(op), provider, "serves the owner");
        address next = vm.addr(0x0BE7A71);
        vm.expectEmit();
        emit Operators.OperatorSet(provider, next);
        vm.prank(provider);
        escrow.setOperator(next);
        assertEq(escrow.ownerOf(op), address(0), "the replaced operator serves nobody");
        assertEq(escrow.ownerOf(next), provider, "the new one does");
        vm.prank(provider);
        escrow.setOperator(address(0));
        assertEq(escrow.operatorOf(provider), address(0), "revoked");
        assertEq(escrow.ownerOf(next), address(0), "revoked operator serves nobody");
        // A revoked operator may be named again, by anyone.
        vm.prank(provider);
        escrow.setOperator(op);
        assertEq(escrow.ownerOf(op), provider, "named again");
    }

    function test_setOperator_refusals() public {
        address other = vm.addr(0xD1FF);
        // The owner itself, another owner's operator, a registered account (a verifier).
        vm.startPrank(other);
        vm.expectRevert(abi.encodeWithSelector(Operators.OperatorTaken.selector, other));
        escrow.setOperator(other);
        vm.expectRevert(abi.encodeWithSelector(Operators.OperatorTaken.selector, op));
        escrow.setOperator(op);
        vm.expectRevert(abi.encodeWithSelector(Operators.OperatorTaken.selector, verifiers[0]));
        escrow.setOperator(verifiers[0]);
        vm.stopPrank();
        // An owner that has an operator is nobody's operator.
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(Operators.OperatorTaken.selector, provider));
        escrow.setOperator(provider);
    }

    function test_operator_registersTheOwnersKey() public {
        bytes32 key = keccak256("the owner's new node key");
        vm.expectEmit();
        emit SietchEscrow.Registered(provider, key, new bytes(64));
        vm.prank(op);
        escrow.register(key, new bytes(64));
        (bytes32 ownerKey,,,,) = escrow.accounts(provider);
        (bytes32 opKey,,,,) = escrow.accounts(op);
        assertEq(ownerKey, key, "the owner's key rotated");
        assertEq(opKey, bytes32(0), "the operator has no account of its own");
    }

    /// The operator signs the result and claims the ticket; the pay is credited to the owner,
    /// and only the owner's withdrawal moves it.
    function test_operator_claimsTicket_payGoesToOwner() public {
        bytes32 ch = _open(100e18);
        bytes32 id = _operatorClaims(ch, JOB, 10e18);
        vm.warp(block.timestamp + CHALLENGE + 1);
        escrow.finalizeTicket(id);
        assertEq(escrow.balances(provider), 10e18, "credited to the owner");
        assertEq(escrow.balances(op), 0, "nothing to the operator");
        assertEq(_withdraw(provider), 10e18, "the owner withdraws");
        assertEq(token.balanceOf(op), 0, "the operator never held a token");
    }

    /// Vouchers always pay the channel's provider, the owner, whoever submits them.
    function test_operator_claimsVouchers_payGoesToOwner() public {
        bytes32 ch = _open(100e18);
        bytes memory sig = _signVoucher(BUYER_PK, ch, 7e18);
        vm.prank(op);
        escrow.claim(_voucher(ch, 7e18), sig);
        assertEq(token.balanceOf(provider), 7e18, "paid to the owner");
        assertEq(token.balanceOf(op), 0, "not to the operator");
    }

    /// The owner's own claim with its operator's signed result works too (a node that still
    /// sends some calls from the owner's key).
    function test_owner_claimsWithItsOperatorsResult() public {
        bytes32 ch = _open(100e18);
        SietchEscrow.Ticket memory t = _ticket(ch, JOB, 10e18);
        SietchEscrow.ResultCommitment memory r = _result(ch, JOB, keccak256("good"), 10e18);
        bytes memory ts = _sig(BUYER_PK, escrow.hashTicket(t));
        bytes memory rs = _sig(OPERATOR_PK, escrow.hashResult(r));
        vm.prank(provider);
        escrow.claimTicket(t, ts, r, rs);
        assertTrue(escrow.tickets(escrow.ticketId(ch, JOB)).state == SietchEscrow.TicketState.Claimed, "claimed");
    }

    function test_operator_startsClose() public {
        bytes32 ch = _open(100e18);
        vm.prank(op);
        escrow.startClose(ch);
        (,, SietchEscrow.ChannelState state,,,,) = escrow.channels(ch);
        assertTrue(state == SietchEscrow.ChannelState.Closing, "closing");
    }

    /// A buyer's operator disputes for it: the bond comes from the operator's wallet, and what
    /// the dispute returns goes to the buyer (the owner).
    function test_buyersOperator_disputes_refundToBuyer() public {
        address buyerOp = vm.addr(0xB0B0);
        vm.prank(buyer);
        escrow.setOperator(buyerOp);
        token.mint(buyerOp, BOND);
        vm.prank(buyerOp);
        token.approve(address(escrow), BOND);
        bytes32 ch = _open(100e18);
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        vm.prank(buyerOp);
        escrow.dispute(id);
        assertEq(token.balanceOf(buyerOp), 0, "bond from the operator");
        address[3] memory d = _draw(id);
        _vote(id, JOB, d[0], keccak256("bad"));
        _vote(id, JOB, d[1], keccak256("bad"));
        escrow.resolve(id);
        // (The fixture's provider has an operator, so its slash compensates nobody.)
        assertEq(escrow.balances(buyer), 10e18 + BOND, "refund and bond to the buyer");
        assertEq(escrow.balances(buyerOp), 0, "nothing to its operator");
    }

    /// A drawn verifier's operator votes for it; the fee is credited to the verifier.
    function test_operator_votesForItsDrawnOwner() public {
        bytes32 ch = _open(100e18);
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        address[3] memory d = _disputeAndDraw(id);
        uint256 vopPk = 0x0BE7A80;
        address vop = vm.addr(vopPk);
        vm.prank(d[0]);
        escrow.setOperator(vop);
        SietchEscrow.ResultCommitment memory r = _result(ch, JOB, keccak256("good"), 0);
        bytes memory sig = _sig(vopPk, escrow.hashResult(r));
        vm.expectEmit();
        emit SietchEscrow.VerdictSubmitted(id, d[0], true, keccak256("good"));
        escrow.submitVerdict(id, r, sig);
        // The owner cannot vote a second time through its own key.
        _voteExpecting(
            id, JOB, d[0], keccak256("good"), abi.encodeWithSelector(SietchEscrow.NotAVerifier.selector, d[0])
        );
        _vote(id, JOB, d[1], keccak256("good"));
        escrow.resolve(id);
        assertEq(escrow.balances(d[0]), FEE, "fee to the verifier");
        assertEq(escrow.balances(vop), 0, "not to its operator");
    }
}

/// A stolen operator key, used the way an attacker would: it must take neither the stake nor
/// the earnings, and a revoked one must do nothing more.
contract OperatorAttackTest is OperatorBase {
    bytes32 internal constant JOB = keccak256("job");

    /// The owner has earnings credited and stake on its way out; the thief tries every exit.
    function test_stolenOperator_cannotWithdrawUnstakeOrStake() public {
        bytes32 ch = _open(100e18);
        bytes32 id = _operatorClaims(ch, JOB, 10e18);
        vm.warp(block.timestamp + CHALLENGE + 1);
        escrow.finalizeTicket(id);
        vm.prank(provider);
        escrow.requestUnstake(500e18);
        vm.warp(block.timestamp + UNSTAKE_DELAY);

        vm.startPrank(op);
        vm.expectRevert(SietchEscrow.NothingToWithdraw.selector);
        escrow.withdraw();
        vm.expectRevert(SietchEscrow.NothingToUnstake.selector);
        escrow.unstake();
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.InsufficientStake.selector, 500e18, 0));
        escrow.requestUnstake(500e18);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.NotRegistered.selector, op));
        escrow.stake(1);
        vm.stopPrank();

        assertEq(escrow.balances(provider), 10e18, "earnings still the owner's");
        assertEq(_held(provider), STAKE, "stake still the owner's");
        vm.prank(provider);
        escrow.unstake();
        assertEq(_withdraw(provider), 10e18, "the owner withdraws its earnings");
        assertEq(token.balanceOf(provider), 10e18 + 500e18, "and its unstaked stake");
        assertEq(token.balanceOf(op), 0, "the thief got nothing");
    }

    /// The thief tries to re-point the owner's payouts: name another operator, take over the
    /// owner's slot, serve an owner of its own.
    function test_stolenOperator_cannotRepointOrEscape() public {
        address thief = vm.addr(THIEF_PK);
        vm.prank(op);
        vm.expectRevert(abi.encodeWithSelector(Operators.OperatorCannotAppoint.selector, op));
        escrow.setOperator(thief);
        // Its own owner account cannot adopt the stolen key either (one owner per operator).
        vm.prank(thief);
        vm.expectRevert(abi.encodeWithSelector(Operators.OperatorTaken.selector, op));
        escrow.setOperator(op);
        assertEq(escrow.operatorOf(provider), op, "unchanged");
        // There is no payout address to change: voucher pay goes to the channel's provider,
        // credits to the account they are booked to.
        bytes32 ch = _open(100e18);
        bytes memory sig = _signVoucher(BUYER_PK, ch, 3e18);
        vm.prank(op);
        escrow.claim(_voucher(ch, 3e18), sig);
        assertEq(token.balanceOf(provider), 3e18, "paid to the owner");
    }

    /// Registering "for itself" with the stolen key rotates the owner's node key (the owner
    /// registers its own again, or revokes) and never creates an account of the operator's.
    function test_stolenOperator_registersItselfElsewhere_bindsNothingOfItsOwn() public {
        bytes32 thiefKey = keccak256("thief node key");
        vm.prank(op);
        escrow.register(thiefKey, new bytes(64));
        (bytes32 opKey,,,,) = escrow.accounts(op);
        assertEq(opKey, bytes32(0), "no account for the operator");
        // The owner revokes and rotates back; the revoked key now only acts for itself.
        vm.startPrank(provider);
        escrow.setOperator(address(0));
        escrow.register(keccak256("owner key"), new bytes(64));
        vm.stopPrank();
        vm.prank(op);
        escrow.register(thiefKey, new bytes(64));
        (bytes32 ownerKey,,,,) = escrow.accounts(provider);
        assertEq(ownerKey, keccak256("owner key"), "the owner's key stays");
        (opKey,,,,) = escrow.accounts(op);
        assertEq(opKey, thiefKey, "the revoked key registered only itself");
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.ProviderNotStaked.selector, op, 0, MIN_STAKE));
        escrow.openChannel(op, 100e18); // nothing staked behind it: no buyer can pay it
    }

    /// After the owner revokes it, the old operator's claims, signatures and votes count for
    /// nothing.
    function test_revokedOperator_cannotClaimSignOrVote() public {
        bytes32 ch = _open(100e18);
        SietchEscrow.Ticket memory t = _ticket(ch, JOB, 10e18);
        SietchEscrow.ResultCommitment memory r = _result(ch, JOB, keccak256("good"), 10e18);
        bytes memory ts = _sig(BUYER_PK, escrow.hashTicket(t));
        bytes memory rs = _sig(OPERATOR_PK, escrow.hashResult(r)); // signed before the revocation
        vm.prank(provider);
        escrow.setOperator(address(0));

        vm.prank(op);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.Unauthorized.selector, op));
        escrow.claimTicket(t, ts, r, rs);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.BadSignature.selector, provider));
        escrow.claimTicket(t, ts, r, rs);
        vm.prank(op);
        vm.expectRevert(abi.encodeWithSelector(SietchEscrow.Unauthorized.selector, op));
        escrow.startClose(ch);

        // A verifier revokes its operator between the draw and the vote.
        bytes32 id = _claimTicket(ch, JOB, 10e18);
        address[3] memory d = _disputeAndDraw(id);
        address vop = vm.addr(0x0BE7A90);
        pkOf[vop] = 0x0BE7A90;
        vm.startPrank(d[0]);
        escrow.setOperator(vop);
        escrow.setOperator(address(0));
        vm.stopPrank();
        _voteExpecting(id, JOB, vop, keccak256("bad"), abi.encodeWithSelector(SietchEscrow.NotAVerifier.selector, vop));
    }

    /// The thief opens a channel to the owner from a buyer account of its own, signs a wrong
    /// result with the stolen key, claims it and disputes it. The owner is slashed (the key
    /// signs in its name: that is what it is for), but the thief gets back only its own deposit
    /// and bond: an operated owner's slash compensates nobody.
    function test_stolenOperator_slashingItsOwnerPaysTheThiefNothing() public {
        uint256 thiefPk = THIEF_PK;
        address thief = vm.addr(thiefPk);
        token.mint(thief, 1000e18);
        vm.startPrank(thief);
        token.approve(address(escrow), type(uint256).max);
        bytes32 ch = escrow.openChannel(provider, 900e18);
        vm.stopPrank();
        SietchEscrow.Ticket memory t = _ticketAt(ch, JOB, 900e18, 0);
        SietchEscrow.ResultCommitment memory r = _result(ch, JOB, keccak256("wrong"), 900e18);
        bytes memory ts = _sig(thiefPk, escrow.hashTicket(t));
        bytes memory rs = _sig(OPERATOR_PK, escrow.hashResult(r));
        vm.prank(op);
        bytes32 id = escrow.claimTicket(t, ts, r, rs);
        vm.prank(thief);
        escrow.dispute(id);
        address[3] memory d = _draw(id);
        _vote(id, JOB, d[0], keccak256("right"));
        _vote(id, JOB, d[1], keccak256("right"));
        escrow.resolve(id);

        assertEq(escrow.balances(thief), 900e18 + BOND, "its own reservation and bond, no compensation");
        assertEq(_withdraw(thief), 900e18 + BOND, "withdrawn");
        assertEq(token.balanceOf(thief), 1000e18, "the thief ends where it started");
        assertEq(_held(provider), 0, "the owner was slashed");
        assertEq(escrow.balances(escrow.BURN_ADDRESS()), STAKE - 2 * FEE, "the stake burned, less the verifiers' fees");
    }

    /// The mark that withholds compensation stays while a ticket claimed under the operator is
    /// open, and goes when the owner revokes with none open.
    function test_operatedMark_clearedOnlyByARevocationWithNoTicketOpen() public {
        bytes32 ch = _open(100e18);
        bytes32 id = _operatorClaims(ch, JOB, 10e18);
        vm.prank(provider);
        escrow.setOperator(address(0)); // a ticket is open: the mark stays
        _decide(id, JOB, keccak256("bad"));
        assertEq(escrow.balances(buyer), 10e18 + BOND, "no compensation: claimed under an operator");

        // A second owner, operated and then revoked with nothing open, compensates again.
        uint256 pk2 = 0x5EC0;
        address p2 = vm.addr(pk2);
        _registerAndStake(p2, STAKE);
        vm.startPrank(p2);
        escrow.setOperator(vm.addr(0x5EC1));
        escrow.setOperator(address(0));
        vm.stopPrank();
        _nextEpoch();
        bytes32 ch2 = _openTo(p2, 100e18);
        bytes32 id2 = _claimTicketAs(pk2, _ticket(ch2, JOB, 10e18), 10e18, "");
        uint256 before = escrow.balances(buyer);
        _decide(id2, JOB, keccak256("bad"));
        assertEq(escrow.balances(buyer) - before, 10e18 + BOND + 10e18, "compensated again");
    }
}
