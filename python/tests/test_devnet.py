"""The SDK against a real market (``sietch devnet``): a job end to end, errors with their
stable codes, funding, the asyncio client, following events, and generation."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wasmtime

import sietch
from sietch import (
    AsyncClient,
    BlobRef,
    Client,
    ErrorCode,
    Job,
    Limits,
    Prompt,
    Verification,
)

from .conftest import ROOT, Devnet

TOUR = ROOT / "sandbox" / "guests" / "wasi_tour.wat"
"""Reads stdin and /input/data, copies them to stdout and /output/copy, writes 16 random
bytes and the clock to stdout, exits 7: everything the spec controls shows in its output."""


def wasm(wat: str) -> bytes:
    return bytes(wasmtime.wat2wasm(wat))


TOUR_WASM = wasm(TOUR.read_text())
HELLO = wasm((ROOT / "sandbox" / "guests" / "hello.wat").read_text())


def tour_job(stdin: bytes, data: bytes, **kw: object) -> Job:
    return Job(
        module=TOUR_WASM,
        args=["tour"],
        env={"GREETING": "hi"},
        stdin=stdin,
        inputs={"data": data},
        limits=Limits(fuel=10_000_000, memory_bytes=1 << 20, wall_time_ms=10_000),
        verification=Verification(sampling_ppm=1_000_000),  # every job re-run and compared
        price_cap=10**17,
        **kw,
    )


@pytest.fixture()
def client(devnet: Devnet) -> Client:
    return Client.from_data_dir(devnet.data_dir, url=devnet.url)


def test_reads_are_typed(client: Client, devnet: Devnet) -> None:
    node = client.node()
    assert node.evm_address.startswith("0x") and node.chain is not None
    offers = client.offers()
    assert len(offers) >= 3 and all(o.price_per_gfuel > 0 for o in offers)
    providers = client.providers()
    assert {p.evm_address for p in providers} >= {o.evm_address for o in offers}
    assert all(0 < p.reputation.score < 1 for p in providers)
    assert client.stats().bucket_secs > 0
    assert client.blobs().quota_bytes > 0
    client.settlements(limit=5)
    client.disputes()
    # A reader without the token reads the same.
    with Client(devnet.url) as anonymous:
        assert not anonymous.has_token
        assert anonymous.node().peer_id == node.peer_id
    assert "token=<set>" in repr(client) and devnet.token not in repr(client)


def test_a_wasm_job_end_to_end(client: Client) -> None:
    stdin, data = b"stdin from python\n", os.urandom(300)
    job = tour_job(stdin, data)
    job_id, events = client.submit_and_follow(job)
    kinds = []
    with events:
        for e in events:
            assert e.job == job_id or e.kind in ("lagged", "reconnected")
            kinds.append(e.kind)
    # Followed live from before the submission: none missed, in order, ending at finished.
    assert kinds[0] == "submitted", kinds
    assert kinds[-1] == "finished", kinds
    for k in ("sent", "result_in", "checking", "checked"):
        assert k in kinds, kinds
    assert kinds.index("sent") < kinds.index("result_in") < kinds.index("checked")

    rec = client.wait(job_id, timeout=60)
    assert rec.state == "paid", rec.note
    assert rec.outputs is not None
    out = rec.outputs
    assert out.exit_code == 7 and out.outcome == "exited with code 7"
    assert out.stdout.startswith(stdin) and len(out.stdout) == len(stdin) + 24
    assert out.file("copy") == data
    # The cost: what the provider charged for the fuel it burned, within the cap.
    assert rec.amount is not None and 0 < rec.amount <= job.price_cap
    assert rec.amount == out.amount and rec.fuel_used == out.fuel_used > 0
    # The spot check: sampled, re-run elsewhere, same output hash.
    assert rec.check.sampled and rec.check.passed is True
    assert rec.check.decision == "Passed"
    assert client.evidence(job_id) is None  # an honest provider leaves no evidence
    # The blobs went up by content hash: the node holds them.
    assert client.has_blob(sietch.blob_hash(TOUR_WASM))
    # Following a job that is over gives its end at once.
    assert [e.kind for e in client.follow(job_id)] == ["finished"]


def test_run_waits_for_the_verified_result(client: Client) -> None:
    done = client.run(tour_job(b"run\n", b"x" * 10))
    assert done.check == "Passed"
    assert done.paid > 0 and done.paid == done.outputs.amount
    assert done.outputs.stdout.startswith(b"run\n") and done.outputs.file("copy") == b"x" * 10
    assert done.millis > 0
    rec = client.job(done.job_id)
    assert rec.provider == done.provider and rec.state == "paid"


def test_errors_carry_the_nodes_stable_codes(client: Client, devnet: Devnet) -> None:
    with pytest.raises(sietch.BadRequest) as bad:
        client.submit(Job(module=HELLO, limits=Limits(wall_time_ms=0)))
    assert bad.value.code == ErrorCode.BAD_JOB and bad.value.status == 400
    assert "wall_time_ms" in bad.value.message

    with pytest.raises(sietch.BadRequest) as bad:
        client.submit(Job(module=HELLO, inputs={"../etc/passwd": b"x"}))
    assert bad.value.code == ErrorCode.BAD_INPUT_NAME

    with pytest.raises(sietch.BadRequest) as bad:
        client.submit(Job(module=BlobRef("0x" + "ab" * 32)))
    assert bad.value.code == ErrorCode.MISSING_BLOB

    with pytest.raises(sietch.NoMatch) as nm:
        client.run(Job(module=HELLO, limits=Limits(fuel=10_000_000), price_cap=1))
    assert nm.value.code == ErrorCode.NO_MATCH and nm.value.status == 422
    assert nm.value.blocker == "price"
    assert nm.value.funnel[0][0] == "live" and nm.value.funnel[0][1] >= 3

    with pytest.raises(sietch.NotFound) as nf:
        client.job("0x" + "00" * 32)
    assert nf.value.code == ErrorCode.NO_SUCH_JOB

    with Client(devnet.url) as anonymous, pytest.raises(sietch.Unauthorized) as un:
        anonymous.upload(b"a blob")
    assert un.value.code == ErrorCode.TOKEN_REQUIRED and un.value.status == 401
    with Client(devnet.url, "not-the-token") as wrong, pytest.raises(sietch.Unauthorized) as un:
        wrong.upload(b"a blob")
    assert un.value.code == ErrorCode.BAD_TOKEN

    with pytest.raises(sietch.BadRequest) as bad:
        client.upload(b"")
    assert bad.value.code == ErrorCode.EMPTY_BLOB

    # Checked here, before anything is sent: an id goes into a URL path.
    with pytest.raises(sietch.BadId):
        client.job("../node")
    with pytest.raises(sietch.Unreachable):
        Client("http://127.0.0.1:9").node()


def test_a_job_never_goes_to_a_provider_it_avoids(client: Client) -> None:
    """``Job.avoid``: the node's matching never sends the job to a provider on the list (its
    ``sent_to`` says where it went); when only avoided providers fit, it is refused at once
    (``no_match``, blocker ``avoid``); a malformed list is refused by the SDK, and by the node
    (``bad_avoid``) should a client not check it."""
    providers = sorted({o.evm_address for o in client.offers()})
    assert len(providers) >= 3, providers
    avoided = providers[:2]

    def job(avoid: list[str]) -> Job:
        return Job(
            module=HELLO,
            limits=Limits(fuel=10_000_000, memory_bytes=1 << 20),
            verification=Verification(sampling_ppm=1_000_000),
            price_cap=10**17,
            avoid=avoid,
        )

    for _ in range(3):
        done = client.run(job(avoided))
        assert done.provider not in avoided, (done.provider, avoided)
        sent = client.job(done.job_id).sent_to
        assert sent and not set(sent) & set(avoided), (sent, avoided)
    with pytest.raises(sietch.NoMatch) as nm:
        client.submit(job(providers))
    assert nm.value.code == ErrorCode.NO_MATCH and nm.value.status == 422
    assert nm.value.blocker == "avoid", nm.value.message
    assert "providers to avoid" in nm.value.message and nm.value.funnel[-1] == ("avoid", 0)
    with pytest.raises(ValueError):
        job(["0x12"])
    unchecked = Job.model_construct(module=HELLO, avoid=["0x12"])
    with pytest.raises(sietch.BadRequest) as bad:
        client.submit(unchecked)
    assert bad.value.code == ErrorCode.BAD_AVOID and "0x12" in bad.value.message


def test_fund_a_channel(client: Client) -> None:
    provider = client.offers()[0].evm_address

    def deposit() -> int:
        return sum(c.deposit for c in client.channels() if c.provider.lower() == provider.lower())

    before = deposit()
    channel = client.fund(provider, 10**18)
    assert channel.startswith("0x") and len(channel) == 66
    deadline = time.monotonic() + 60
    while deposit() < before + 10**18:
        assert time.monotonic() < deadline, f"deposit stayed {deposit()} (was {before})"
        time.sleep(0.5)
    assert any(c.channel == channel for c in client.channels())

    with pytest.raises(sietch.BadRequest) as bad:
        client.fund(provider, 0)
    assert bad.value.code == ErrorCode.BAD_AMOUNT
    with pytest.raises(sietch.BadRequest) as bad:
        client.fund("not-an-address", 1)
    assert bad.value.code == ErrorCode.BAD_FUNDING


def test_the_async_client(devnet: Devnet) -> None:
    async def main() -> None:
        async with AsyncClient.from_data_dir(devnet.data_dir, url=devnet.url) as node:
            info, offers = await asyncio.gather(node.node(), node.offers())
            assert info.peer_id and len(offers) >= 3
            job_id, events = await node.submit_and_follow(tour_job(b"async\n", b"y"))
            kinds = [e.kind async for e in events]
            assert kinds[0] == "submitted" and kinds[-1] == "finished", kinds
            rec = await node.wait(job_id, timeout=60)
            assert rec.state == "paid" and rec.outputs is not None
            assert rec.outputs.stdout.startswith(b"async\n")
            # Two jobs at once, each waited for by the node.
            a, b = await asyncio.gather(
                node.run(tour_job(b"a\n", b"1")), node.run(tour_job(b"b\n", b"2"))
            )
            assert a.outputs.stdout.startswith(b"a\n") and b.outputs.stdout.startswith(b"b\n")
            assert a.check == b.check == "Passed"
            with pytest.raises(sietch.BadRequest) as bad:
                await node.submit(Job(module=HELLO, limits=Limits(wall_time_ms=0)))
            assert bad.value.code == ErrorCode.BAD_JOB

    asyncio.run(main())


def test_event_stream_resumes_from_its_last_id(client: Client) -> None:
    """A listener that goes away and comes back with its last event id gets exactly what
    it missed: the events of a job that ran meanwhile, in order, none twice."""
    with client.events() as stream:
        job_id = client.submit(tour_job(b"away\n", b"z"))
        for e in stream:
            assert e.id is not None, e
            if e.kind == "submitted" and e.job == job_id:
                break
        last = stream.last_event_id
    assert last is not None
    rec = client.wait(job_id, timeout=60)  # the job runs to its end while nobody listens
    assert rec.state == "paid"
    run, seq = last.split("-")
    back = []
    with client.events(since=last) as stream:
        for e in stream:
            back.append(e)
            if e.kind == "finished" and e.job == job_id:
                break
    assert back[0].kind != "lagged", back[0]
    seqs = [int(e.id.split("-")[1]) for e in back if e.id is not None]
    assert len(seqs) == len(back), "an event without an id"
    assert all(e.id.startswith(run + "-") for e in back if e.id)
    assert seqs == list(range(int(seq) + 1, int(seq) + 1 + len(seqs))), seqs
    kinds = [e.kind for e in back if e.job == job_id]
    assert kinds[0] == "sent" and kinds[-1] == "finished", kinds


def test_the_examples_run(devnet: Devnet) -> None:
    ex = Path(__file__).resolve().parents[1] / "examples" / "job.py"
    r = subprocess.run(
        [sys.executable, str(ex), "--data-dir", str(devnet.data_dir), "--url", devnet.url],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stdout:    'Hello from Python, through the market.\\n'" in r.stdout, r.stdout
    assert "decision=Passed" in r.stdout and "  finished" in r.stdout, r.stdout


def model_path() -> Path:
    d = Path(os.environ.get("SIETCH_MODEL_DIR", Path.home() / ".cache" / "sietch" / "models"))
    return d / "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_and_guest() -> tuple[Path, Path]:
    """The cached model and the inference guest, or the test skipped saying which is missing."""
    model = model_path()
    if not model.is_file():
        pytest.skip(f"no language model at {model}: `bash scripts/model.sh` fetches it")
    try:
        guest = sietch.find_llm_guest()
    except sietch.NoGuest as e:
        pytest.skip(str(e))
    return model, guest


def test_generate(client: Client) -> None:
    model, guest = model_and_guest()
    out = client.generate(
        [Prompt(prompt="What is the capital of France?", max_tokens=12)],
        model=model,
        guest=guest,
        fuel=5_000_000_000,
        sampling_ppm=100_000,  # unchecked jobs are covered by no stake: the node asks some
        price_cap=5 * 10**18,
    )
    assert len(out.completions) == 1
    c = out.completions[0]
    assert c.finish in ("stop", "length") and "Paris" in c.text, c
    assert out.completion_tokens > 0 and out.prompt_tokens > 0
    assert out.job.paid > 0 and out.cost_per_1k_tokens > 0 and out.tokens_per_second > 0
    # The model is now a blob of the node: a second generation sends only its hash.
    assert client.has_blob(sietch.blob_hash(model.read_bytes()))
    summary = client.job(out.job.job_id).generation
    assert isinstance(summary, sietch.GenerationSummary) and "Paris" in summary.first_text


@pytest.mark.timeout(480)
def test_generate_checked_by_rescoring(client: Client) -> None:
    """``check="rescore"`` (sdk/tests/rescore.rs through the Python SDK): a generation sampled
    at 100% is checked by another provider re-scoring its claimed completions, passes and is
    paid; margins out of the node's bounds are refused by the SDK before anything is sent, and
    by the node (``bad_job`` naming ``verification.margin``) should a client not check them."""
    for margin in (0.0, -1.0, 1001.0):
        with pytest.raises(sietch.BadCheck):
            client.generate(["x"], model=BlobRef("0x" + "ab" * 32), guest=HELLO, check="rescore",
                            margin=margin)  # fmt: skip
        unchecked = Job.model_construct(
            module=HELLO,
            verification=Verification.model_construct(comparison="rescore", margin=margin),
        )
        with pytest.raises(sietch.BadRequest) as bad:
            client.submit(unchecked)
        assert bad.value.code == ErrorCode.BAD_JOB, bad.value.message
        assert "verification.margin" in bad.value.message, bad.value.message

    model, guest = model_and_guest()
    out = client.generate(
        [Prompt(prompt="What is the capital of France?", max_tokens=12)],
        model=model,
        guest=guest,
        check="rescore",
        margin=0.1,
        fuel=5_000_000_000,
        sampling_ppm=1_000_000,  # every job checked: the re-run re-scores this one
        price_cap=5 * 10**18,
    )
    assert len(out.completions) == 1, out.completions
    c = out.completions[0]
    assert c.finish in ("stop", "length") and "Paris" in c.text, c
    assert out.job.check == "Passed", out.job
    assert out.job.paid > 0, out.job
    rec = client.job(out.job.job_id)
    assert rec.state == "paid", rec.note
    assert rec.check.sampled and rec.check.passed is True and rec.check.decision == "Passed"
    # The re-run re-scored the claim rather than generating again: the buyer's node put the
    # claimed completions in its blob store, where the re-running provider fetched them.
    claimed = out.job.outputs.file(sietch.COMPLETIONS_OUTPUT)
    assert claimed and client.has_blob(sietch.blob_hash(claimed)), claimed
