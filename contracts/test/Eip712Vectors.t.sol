// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SietchEscrow} from "../src/SietchEscrow.sol";

/// The contract hashes tickets, result commitments and vouchers exactly as the market crate
/// does: every vector in market/testdata/eip712_vectors.json (docs/eip712.md) is reproduced
/// here, digest for digest, and every signature recovers to the vector's signer.
/// SIETCH_EIP712_VECTORS overrides the path (relative to contracts/; it must be readable under
/// foundry.toml's fs_permissions).
contract Eip712VectorsTest is Base {
    string internal json;
    SietchEscrow internal at; // the escrow's code at the vectors' verifyingContract and chain

    function setUp() public override {
        super.setUp();
        string memory path = vm.envOr("SIETCH_EIP712_VECTORS", string("../market/testdata/eip712_vectors.json"));
        if (!vm.exists(path)) return;
        json = vm.readFile(path);
        vm.chainId(vm.parseJsonUint(json, ".chainId"));
        at = SietchEscrow(vm.parseJsonAddress(json, ".verifyingContract"));
        vm.etch(address(at), address(escrow).code);
    }

    function _present() internal returns (bool) {
        if (bytes(json).length == 0) {
            // The market crate writes the file; until it exists there is nothing to compare.
            vm.skip(true);
            return false;
        }
        return true;
    }

    function _key(string memory list, uint256 i, string memory field) internal pure returns (string memory) {
        return string.concat(".", list, "[", vm.toString(i), "].", field);
    }

    function _count(string memory list) internal view returns (uint256 n) {
        while (vm.keyExistsJson(json, string.concat(".", list, "[", vm.toString(n), "]"))) ++n;
    }

    function _checkSigned(string memory list, uint256 i, bytes32 structHash, bytes32 digest) internal view {
        assertEq(structHash, vm.parseJsonBytes32(json, _key(list, i, "structHash")), string.concat(list, " structHash"));
        assertEq(digest, vm.parseJsonBytes32(json, _key(list, i, "digest")), string.concat(list, " digest"));
        address signer = ECDSA.recover(digest, vm.parseJsonBytes(json, _key(list, i, "signature")));
        assertEq(signer, vm.parseJsonAddress(json, _key(list, i, "signer")), string.concat(list, " signer"));
    }

    function test_vectors_domainAndTypeHashes() public {
        if (!_present()) return;
        assertEq(at.domainSeparator(), vm.parseJsonBytes32(json, ".domainSeparator"), "domain separator");
        assertEq(at.TICKET_TYPEHASH(), vm.parseJsonBytes32(json, ".typeHashes.ticket"), "ticket type hash");
        assertEq(
            at.TICKET_TYPEHASH(),
            keccak256(
                "Ticket(bytes32 jobId,bytes32 specHash,bytes32 channelId,uint256 cumulativeBefore,uint256 maxAmount,uint64 deadline,bytes32 checkCommit,uint128 pricePerGFuel,uint128 pricePerGpuSecond)"
            ),
            "ticket type string (docs/eip712.md)"
        );
        assertEq(at.RESULT_TYPEHASH(), vm.parseJsonBytes32(json, ".typeHashes.resultCommitment"), "result type hash");
        assertEq(at.VOUCHER_TYPEHASH(), vm.parseJsonBytes32(json, ".typeHashes.voucher"), "voucher type hash");
    }

    function test_vectors_tickets() public {
        if (!_present()) return;
        uint256 n = _count("tickets");
        assertTrue(n != 0, "no ticket vectors");
        bool nonZeroBefore = false;
        bool fuelPriced = false;
        bool gpuPriced = false;
        for (uint256 i = 0; i < n; ++i) {
            SietchEscrow.Ticket memory t = SietchEscrow.Ticket({
                jobId: vm.parseJsonBytes32(json, _key("tickets", i, "jobId")),
                specHash: vm.parseJsonBytes32(json, _key("tickets", i, "specHash")),
                channelId: vm.parseJsonBytes32(json, _key("tickets", i, "channelId")),
                cumulativeBefore: vm.parseJsonUint(json, _key("tickets", i, "cumulativeBefore")),
                maxAmount: vm.parseJsonUint(json, _key("tickets", i, "maxAmount")),
                deadline: uint64(vm.parseJsonUint(json, _key("tickets", i, "deadline"))),
                checkCommit: vm.parseJsonBytes32(json, _key("tickets", i, "checkCommit")),
                pricePerGFuel: uint128(vm.parseJsonUint(json, _key("tickets", i, "pricePerGFuel"))),
                pricePerGpuSecond: uint128(vm.parseJsonUint(json, _key("tickets", i, "pricePerGpuSecond")))
            });
            if (t.cumulativeBefore != 0) nonZeroBefore = true;
            if (t.pricePerGFuel != 0) fuelPriced = true;
            if (t.pricePerGpuSecond != 0) gpuPriced = true;
            _checkSigned("tickets", i, _ticketStructHash(t), at.hashTicket(t));
        }
        // The vectors must exercise the field, or a contract that ignores it would pass.
        assertTrue(nonZeroBefore, "no ticket vector with a non-zero cumulativeBefore");
        assertTrue(fuelPriced && gpuPriced, "no ticket vector with non-zero prices");
    }

    function _ticketStructHash(SietchEscrow.Ticket memory t) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                at.TICKET_TYPEHASH(),
                t.jobId,
                t.specHash,
                t.channelId,
                t.cumulativeBefore,
                t.maxAmount,
                t.deadline,
                t.checkCommit,
                t.pricePerGFuel,
                t.pricePerGpuSecond
            )
        );
    }

    function test_vectors_results() public {
        if (!_present()) return;
        uint256 n = _count("results");
        assertTrue(n != 0, "no result vectors");
        for (uint256 i = 0; i < n; ++i) {
            SietchEscrow.ResultCommitment memory r = SietchEscrow.ResultCommitment({
                jobId: vm.parseJsonBytes32(json, _key("results", i, "jobId")),
                specHash: vm.parseJsonBytes32(json, _key("results", i, "specHash")),
                channelId: vm.parseJsonBytes32(json, _key("results", i, "channelId")),
                outputHash: vm.parseJsonBytes32(json, _key("results", i, "outputHash")),
                fuelUsed: uint64(vm.parseJsonUint(json, _key("results", i, "fuelUsed"))),
                gpuMillis: uint64(vm.parseJsonUint(json, _key("results", i, "gpuMillis"))),
                amount: vm.parseJsonUint(json, _key("results", i, "amount"))
            });
            bytes32 sh = keccak256(
                abi.encode(at.RESULT_TYPEHASH(), r.jobId, r.specHash, r.channelId, r.outputHash, r.fuelUsed, r.gpuMillis, r.amount)
            );
            _checkSigned("results", i, sh, at.hashResult(r));
        }
    }

    function test_vectors_vouchers() public {
        if (!_present()) return;
        uint256 n = _count("vouchers");
        assertTrue(n != 0, "no voucher vectors");
        for (uint256 i = 0; i < n; ++i) {
            SietchEscrow.Voucher memory v = SietchEscrow.Voucher({
                channelId: vm.parseJsonBytes32(json, _key("vouchers", i, "channelId")),
                cumulativeAmount: vm.parseJsonUint(json, _key("vouchers", i, "cumulativeAmount"))
            });
            bytes32 sh = keccak256(abi.encode(at.VOUCHER_TYPEHASH(), v.channelId, v.cumulativeAmount));
            _checkSigned("vouchers", i, sh, at.hashVoucher(v));
        }
    }
}
