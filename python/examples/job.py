"""A whole job on a Sietch market, end to end: upload, submit, follow its events live, wait
for the verified result, read its outputs, what it cost and the spot check's verdict.

Run a local market first (a chain, the escrow, three providers and a buyer node)::

    target/debug/sietch devnet --api-port 7077

then, with the buyer node's data directory (the devnet prints nothing of it: find it with
``ls -d /tmp/.tmp*/buyer``) or its URL and token::

    python examples/job.py --data-dir /tmp/.tmpXXXX/buyer
    python examples/job.py --url http://127.0.0.1:7077 --token "$(cat .../api-token)"
"""

from __future__ import annotations

import argparse
import sys

from sietch import Client, Job, Limits, NoMatch, Verification

# A WASI command that copies stdin to stdout (``cat``), assembled from this text format:
#   (module
#     (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
#     (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
#     (memory (export "memory") 1)
#     (func (export "_start")
#       (i32.store (i32.const 0) (i32.const 64))
#       (i32.store (i32.const 4) (i32.const 4096))
#       (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
#       (i32.store (i32.const 4) (i32.load (i32.const 8)))
#       (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
CAT_WASM = bytes.fromhex(
    "0061736d01000000010c0260047f7f7f7f017f60000002440216776173695f736e617073686f745f7072"
    "6576696577310766645f72656164000016776173695f736e617073686f745f70726576696577310866"
    "645f77726974650000030201010503010001071302066d656d6f72790200065f737461727400020a34"
    "013200410041c0003602004104418020360200410041004101410810001a4104410828020036020041"
    "0141004101410810011a0b0015046e616d65010e0200047265616401057772697465"
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", help="the buyer node's data directory (token and address)")
    p.add_argument("--url", default="http://127.0.0.1:7077", help="the node's API")
    p.add_argument("--token", help="the node's API token (else from --data-dir)")
    a = p.parse_args()
    if a.data_dir:
        node = Client.from_data_dir(a.data_dir, url=a.url)
    else:
        node = Client(a.url, a.token)

    with node:
        print(f"node {node.node().peer_id}: {len(node.offers())} offers")
        job = Job(
            module=CAT_WASM,
            stdin=b"Hello from Python, through the market.\n",
            limits=Limits(fuel=10_000_000, memory_bytes=1 << 20, wall_time_ms=10_000),
            verification=Verification(sampling_ppm=1_000_000),  # re-run elsewhere and compare
            price_cap=10**17,  # 0.1 token at most
        )
        try:
            job_id, events = node.submit_and_follow(job)
        except NoMatch as e:
            print(f"no provider can run it: {e} (blocked at: {e.blocker})", file=sys.stderr)
            return 1
        print(f"job {job_id}")
        with events:
            for ev in events:  # live, from before the submission: none missed
                fields = {k: v for k, v in ev.data.items() if k not in ("kind", "job")}
                print(f"  {ev.kind:10} {fields}")
        rec = node.wait(job_id, timeout=120)
        if rec.outputs is None:
            print(f"job ended {rec.state}: {rec.note}", file=sys.stderr)
            return 1
        print(f"stdout:    {rec.outputs.stdout.decode(errors='replace')!r}")
        print(f"provider:  {rec.provider}")
        print(f"cost:      {rec.amount} base units for {rec.fuel_used} fuel")
        print(f"check:     sampled={rec.check.sampled} decision={rec.check.decision}")
        evidence = node.evidence(job_id)
        if evidence is not None:
            print(f"evidence against the provider: {evidence.decision} {evidence.evidence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
