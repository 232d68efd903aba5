"""The SDK without a node: request shapes, parsing, errors, the event stream's decoder and
its gaps, against ``httpx.MockTransport`` where a node's answers are needed."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pydantic
import pytest

import sietch
from sietch import BlobRef, Client, ErrorCode, GpuNeeds, Job, Limits, Prompt, Verification
from sietch._base import config_api
from sietch.sse import LineBuffer, SseDecoder

from .conftest import ROOT

JOB_ID = "0x" + "11" * 32


def test_urls_and_ids_cannot_carry_a_path() -> None:
    for bad in ["http://a/b", "http://u@evil:1", "http://a?x", "https://a", "http://", "a:1"]:
        with pytest.raises(sietch.BadUrl):
            Client(bad)
    c = Client("http://127.0.0.1:1/", "secret")
    assert c.url == "http://127.0.0.1:1" and c.has_token and "secret" not in repr(c)
    for bad_id in ["", "0x", "../x", "0xab?x=1", "ab/cd", "a" * 65]:
        with pytest.raises(sietch.BadId):
            c.job(bad_id)
    with pytest.raises(sietch.BadId):
        BlobRef("0xnothex")


def test_the_api_address_is_read_from_a_config() -> None:
    assert config_api('# api = "1.2.3.4:1"\napi = "127.0.0.1:9" # here\n') == "127.0.0.1:9"
    assert config_api("api_x = 1\n") is None
    assert config_api("") is None


def test_a_submission_has_the_apis_form() -> None:
    job = Job(
        module=b"\0asm",
        args=["a"],
        env={"K": "V"},
        stdin=b"in",
        inputs={"data": b"d", "model.gguf": BlobRef("0x" + "ab" * 32)},
        limits=Limits(fuel=5, memory_bytes=6, wall_time_ms=7, output_bytes=8),
        min_cpu_cores=2,
        gpu=GpuNeeds(count=1, models=["H100"], min_memory_bytes=1 << 30, min_compute_capability="8.0"),
        verification=Verification.tolerance(1e-3, 1e-6, {"out.f32": "f32"}, sampling_ppm=5),
        price_cap=2**100,
        deadline_secs=9,
    )
    s = job.submission()
    assert s == {
        "module": sietch.blob_hash(b"\0asm"),
        "args": ["a"],
        "env": [["K", "V"]],
        "stdin": sietch.blob_hash(b"in"),
        "inputs": [
            {"name": "data", "blob": sietch.blob_hash(b"d")},
            {"name": "model.gguf", "blob": "0x" + "ab" * 32},
        ],
        "limits": {"fuel": 5, "memory_bytes": 6, "wall_time_ms": 7, "output_bytes": 8},
        "requirements": {
            "min_cpu_cores": 2,
            "features": [],
            "gpu": {
                "count": 1,
                "models": ["H100"],
                "min_memory_bytes": 1 << 30,
                "min_compute_capability": "8.0",
            },
        },
        "verification": {
            "sampling_ppm": 5,
            "reruns": 1,
            "comparison": "tolerance",
            "relative": 1e-3,
            "absolute": 1e-6,
            "float_outputs": [{"path": "out.f32", "kind": "f32"}],
        },
        "price_cap": str(2**100),
        "deadline_secs": 9,
    }
    assert job.blobs() == [b"\0asm", b"in", b"d"]
    # The node's defaults are the SDK's.
    d = Job(module=b"m").submission()
    assert d["limits"] == {
        "fuel": 10**9, "memory_bytes": 64 << 20, "wall_time_ms": 60_000, "output_bytes": 1 << 20
    }  # fmt: skip
    assert d["verification"] == {"sampling_ppm": 100_000, "reruns": 1, "comparison": "exact"}
    assert d["price_cap"] == str(10**17) and d["stdin"] is None
    # No `avoid` unless the job has one (a node older than the field refuses unknown ones).
    assert "avoid" not in d


def test_a_job_avoids_evm_addresses_each_once_within_the_bound() -> None:
    a, b = "0x" + "ab" * 20, "0x" + "CD" * 20
    assert Job(module=b"m", avoid=[a, b, a]).submission()["avoid"] == [a, b]
    many = ["0x%040x" % i for i in range(sietch.MAX_AVOID)]
    assert Job(module=b"m", avoid=many).submission()["avoid"] == many
    for bad in (["0x12"], [a + "00"], ["ab" * 20], [a, "0x" + "zz" * 20], many + ["0x" + "ee" * 20]):
        with pytest.raises(pydantic.ValidationError):
            Job(module=b"m", avoid=bad)


def test_prompts_are_written_as_the_guest_reads_them() -> None:
    # The same lines as the Rust SDK's test (sdk/src/generate.rs).
    g = sietch.Generation(
        model=BlobRef("0x01"),
        prompts=[
            Prompt(prompt="What is the capital of France?", max_tokens=8),
            Prompt(prompt="1, 2, 3,", raw=True, stop=["\n"], temperature=0.7, top_p=0.9, seed=5),
        ],
    )
    assert g.prompts_jsonl().decode() == (
        '{"prompt":"What is the capital of France?","max_tokens":8}\n'
        '{"prompt":"1, 2, 3,","raw":true,"temperature":0.7,"top_p":0.9,"seed":5,"stop":["\\n"]}\n'
    )
    job = g.job(b"guest", BlobRef("0x01"))
    assert list(job.inputs) == [sietch.MODEL_INPUT, sietch.PROMPTS_INPUT]


def test_completions_are_read_and_a_bad_line_is_an_error() -> None:
    lines = (
        b'{"index":0,"text":"Paris.","prompt_tokens":30,"completion_tokens":3,"finish":"stop"}\n'
        b'{"index":1,"text":"","prompt_tokens":0,"completion_tokens":0,"finish":"error",'
        b'"error":"prompt too long"}\n'
    )
    c = sietch.parse_completions(lines)
    assert [x.text for x in c] == ["Paris.", ""] and c[1].error == "prompt too long"
    with pytest.raises(sietch.DecodeError):
        sietch.parse_completions(b'{"index":0}\nnot json\n')


def test_error_answers_are_typed_by_code() -> None:
    def err(status: int, code: str, detail: object = None) -> sietch.ApiError:
        body = {"code": code, "message": "m", **({"detail": detail} if detail else {})}
        return sietch.errors.api_error(status, body, json.dumps(body).encode())

    nm = err(422, "no_match", {"blocker": "gpu", "funnel": [
        {"filter": "live", "passed": 2}, {"filter": "gpu", "passed": 0}]})  # fmt: skip
    assert isinstance(nm, sietch.NoMatch) and nm.code == ErrorCode.NO_MATCH
    assert nm.blocker == "gpu" and nm.funnel == [("live", 2), ("gpu", 0)]
    assert isinstance(err(401, "token_required"), sietch.Unauthorized)
    assert isinstance(err(404, "no_such_blob"), sietch.NotFound)
    assert isinstance(err(502, "job_failed"), sietch.JobFailed)
    assert isinstance(err(429, "event_streams_per_client"), sietch.Busy)
    assert isinstance(err(400, "missing_blob"), sietch.BadRequest)
    new = err(400, "a_code_of_a_newer_node")
    assert isinstance(new, sietch.BadRequest) and new.code == "a_code_of_a_newer_node"
    plain = sietch.errors.api_error(500, None, b"<html>")
    assert isinstance(plain, sietch.Unavailable) and plain.message == "<html>"
    # Every code the node's OpenAPI document lists is known here.
    doc = json.loads((ROOT / "node" / "src" / "api" / "openapi.json").read_text())
    listed = doc["components"]["schemas"]["Error"]["properties"]["code"]["description"]
    codes = {c.strip(" .") for c in listed.split("Every error")[0].removeprefix("Stable:").split(",")}
    assert codes == {c.value for c in ErrorCode}, codes ^ {c.value for c in ErrorCode}


def test_the_sse_decoder() -> None:
    d = SseDecoder(1 << 10)
    got = []
    text = (
        ": keep-alive\n"
        "event: node\n"
        'data: {"kind":"submitted",\n'
        'data: "job":"0x1"}\n'
        "id: 7\n"
        "\n"
        "retry: 500\n"
        "\n"
        'data:{"kind":"lagged","missed":3}\r\n'
        "\r\n"
    )
    lines = LineBuffer(1 << 10)
    for line in lines.feed(text[:17].encode()) + lines.feed(text[17:].encode()):
        e = d.feed(line)
        if e is not None:
            got.append(e)
    assert [(e.kind, e.job, e.id) for e in got] == [("submitted", "0x1", "7"), ("lagged", None, "7")]
    assert d.last_event_id == "7" and d.retry_ms == 500
    with pytest.raises(sietch.TooLarge):
        d.feed("data: " + "x" * 2000)
    with pytest.raises(sietch.TooLarge):
        LineBuffer(10).feed(b"y" * 11)
    bad = SseDecoder(100)
    bad.feed("data: nope")
    with pytest.raises(sietch.DecodeError):
        bad.feed("")


def sse(*events: dict[str, object], ids: bool = False) -> bytes:
    out = []
    for i, e in enumerate(events):
        out.append(("id: %d\n" % (i + 1) if ids else "") + f"event: node\ndata: {json.dumps(e)}\n\n")
    return "".join(out).encode()


Handler = Callable[[httpx.Request], httpx.Response]


def record(state: str) -> dict[str, object]:
    return {"job_id": JOB_ID, "state": state, "counterparty": "0x0", "check": {}}


def test_a_job_followed_through_a_lag_ends_from_its_record() -> None:
    """The stream skipped events (``lagged``): the job's ``finished`` may be among them, so
    the follower reads the job's record and, as it is final, ends with a made-up one."""
    seen: list[str] = []

    def node(req: httpx.Request) -> httpx.Response:
        seen.append(req.url.path)
        if req.url.path == "/api/v1/events":
            body = sse({"kind": "submitted", "job": "0x99"}, {"kind": "sent", "job": JOB_ID},
                       {"kind": "lagged", "missed": 40})  # fmt: skip
            return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
        if req.url.path == f"/api/v1/jobs/{JOB_ID}":
            return httpx.Response(200, json=record("paid" if len(seen) > 2 else "running"))
        return httpx.Response(404, json={"code": "not_found", "message": "?"})

    with Client("http://node:1", transport=httpx.MockTransport(node)) as c:
        events = c.follow(JOB_ID)
        got = [(e.kind, e.data.get("synthetic", False)) for e in events]
    assert got == [("sent", False), ("lagged", False), ("finished", True)]


def test_a_closed_stream_reconnects_with_the_last_event_id() -> None:
    asked: list[str | None] = []

    def node(req: httpx.Request) -> httpx.Response:
        asked.append(req.headers.get("last-event-id"))
        body = sse({"kind": "ready"}, {"kind": "ready"}, ids=True)
        return httpx.Response(200, content=body)

    with Client("http://node:1", transport=httpx.MockTransport(node)) as c:
        stream = c.events(reconnect=True)
        kinds = [next(stream).kind for _ in range(4)]
        stream.close()
    assert kinds == ["ready", "ready", "reconnected", "ready"]
    assert asked == [None, "2"]
    # Without reconnect, the stream ends where the node's does.
    with Client("http://node:1", transport=httpx.MockTransport(node)) as c:
        assert [e.kind for e in c.events()] == ["ready", "ready"]


def test_the_token_goes_only_on_writes() -> None:
    auth: dict[str, str | None] = {}

    def node(req: httpx.Request) -> httpx.Response:
        auth[f"{req.method} {req.url.path}"] = req.headers.get("authorization")
        if req.method == "POST":
            body = req.content
            return httpx.Response(200, json={"hash": sietch.blob_hash(body), "size": len(body)})
        return httpx.Response(200, json=[])

    with Client("http://node:1", "tok", transport=httpx.MockTransport(node)) as c:
        c.offers()
        c.upload(b"blob")
    assert auth == {"GET /api/v1/offers": None, "POST /api/v1/blobs": "Bearer tok"}


def test_an_upload_named_otherwise_by_the_node_is_refused() -> None:
    def node(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"hash": "0x" + "00" * 32, "size": 1})

    with Client("http://node:1", "t", transport=httpx.MockTransport(node)) as c:
        with pytest.raises(sietch.DecodeError):
            c.upload(b"x")


def test_run_follows_a_job_the_node_stopped_waiting_for() -> None:
    """``?wait=true`` answered 202 ``finished: false``: the clients poll the job to its end;
    the asyncio client runs the same core."""
    polls = {"n": 0}

    def node(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/v1/blobs":
            return httpx.Response(200, json={"hash": sietch.blob_hash(req.content), "size": 1})
        if req.url.path == "/api/v1/jobs":
            assert req.url.params["wait"] == "true"
            return httpx.Response(202, json={"job_id": JOB_ID, "finished": False})
        polls["n"] += 1
        if polls["n"] < 3:
            return httpx.Response(200, json=record("running"))
        out = {"outcome": "exited with code 0", "exit_code": 0, "stdout": "aGk=", "files": {},
               "output_hash": "0x1", "fuel_used": 5, "amount": "12"}  # fmt: skip
        return httpx.Response(200, json={**record("paid"), "provider": "0xP", "amount": "12",
                                         "outputs": out, "check": {"decision": "Passed"}})  # fmt: skip

    with Client("http://node:1", "t", transport=httpx.MockTransport(node)) as c:
        done = c.run(Job(module=b"m"))
    assert (done.outputs.stdout, done.paid, done.provider, done.check) == (b"hi", 12, "0xP", "Passed")

    async def run_async() -> sietch.Finished:
        polls["n"] = 0

        async def anode(req: httpx.Request) -> httpx.Response:
            return node(req)

        async with sietch.AsyncClient("http://n:1", "t", transport=httpx.MockTransport(anode)) as a:
            return await a.run(Job(module=b"m"))

    assert asyncio.run(run_async()).outputs.stdout == b"hi"


def test_amounts_are_ints_and_bytes_are_bytes() -> None:
    o = sietch.Outputs.model_validate({
        "outcome": "x", "stdout": "aGVsbG8=", "files": {"f": "AAE="}, "output_hash": "0x",
        "fuel_used": 1, "amount": str(2**127), "a_newer_field": 1,
    })  # fmt: skip
    assert o.stdout == b"hello" and o.file("f") == b"\0\1" and o.amount == 2**127
    assert o.model_dump(mode="json")["amount"] == str(2**127)
    with pytest.raises(sietch.DecodeError):
        sietch._core.parse(sietch.Outputs, {"outcome": "x", "stdout": "!!", "output_hash": "",
                                            "fuel_used": 0, "amount": "1"})  # fmt: skip


def test_the_evidence_of_a_withheld_payment() -> None:
    """What ``GET /api/v1/disputes`` gives for a job whose provider the check found wrong
    (its form in node/src/api/reads.rs), read by ``evidence``."""
    withheld = {
        "ticket": "0x" + "22" * 32, "events": [], "state": "withheld", "job": JOB_ID,
        "withheld_by_this_node": True, "decision": "ProviderWrong",
        "evidence": {"summary": "2 of 2 re-runs disagree", "original": {"provider": "0xP"},
                     "runs": [{"provider": "0xQ", "output_hash": "0x3", "fuel_used": 9,
                               "agrees": False, "signature": "0x44"}]},
    }  # fmt: skip
    settled = {
        "ticket": "0x" + "33" * 32, "state": "settled", "outcome": "undisputed", "job": "0x77",
        "events": [{"block": 5, "kind": "TicketSettled", "fields": {"outcome": "undisputed"}}],
    }  # fmt: skip

    def node(req: httpx.Request) -> httpx.Response:
        assert req.url.path == "/api/v1/disputes"
        return httpx.Response(200, json=[settled, withheld])

    with Client("http://node:1", transport=httpx.MockTransport(node)) as c:
        d = c.evidence(JOB_ID)
        assert d is not None and d.decision == "ProviderWrong" and d.withheld_by_this_node
        assert d.evidence is not None and d.evidence["runs"][0]["agrees"] is False
        assert c.evidence("0x" + "99" * 32) is None
        assert c.disputes()[0].events[0].kind == "TicketSettled"


def test_wait_gives_up_at_its_timeout() -> None:
    def node(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=record("running"))

    with Client("http://node:1", transport=httpx.MockTransport(node)) as c:
        with pytest.raises(sietch.Timeout):
            c.wait(JOB_ID, timeout=0.3)


def test_amounts_read_in_the_nodes_token() -> None:
    node = sietch.NodeInfo.model_validate(
        {
            "peer_id": "p",
            "evm_address": "0x0",
            "token": {"address": "0x1", "symbol": "USDC", "decimals": 6},
        }
    )
    assert node.token is not None
    assert node.token.tokens("2500000") == "2.5 USDC"
    assert node.token.tokens(81) == "0.000081 USDC"
    assert node.token.tokens(0) == "0 USDC"
    # An older node, or one without a chain, says no token.
    assert sietch.NodeInfo.model_validate({"peer_id": "p", "evm_address": "0x0"}).token is None


GENERATION_INPUTS = {sietch.MODEL_INPUT: BlobRef("0x" + "ab" * 32), sietch.PROMPTS_INPUT: b"{}\n"}


def test_a_rescore_check_is_sent_as_the_rust_sdk_sends_it() -> None:
    """``Verification.rescore(margin)`` is the Rust SDK's ``Job::rescore(margin)``: the
    comparison ``rescore`` with its ``margin`` (logits), nothing of ``tolerance``."""
    job = Job(
        module=b"guest",
        inputs=GENERATION_INPUTS,
        verification=Verification.rescore(0.25, sampling_ppm=1_000_000, reruns=2),
    )
    assert job.submission()["verification"] == {
        "sampling_ppm": 1_000_000, "reruns": 2, "comparison": "rescore", "margin": 0.25,
    }  # fmt: skip
    # The default margin is the CLI's (`sietch generate --check rescore`); the bounds are the
    # node's, inclusive at the top.
    assert sietch.DEFAULT_RESCORE_MARGIN == 0.1 and sietch.MAX_RESCORE_MARGIN == 1000.0
    assert Verification.rescore().margin == 0.1
    assert Verification(comparison="rescore").margin == 0.1
    assert Verification.rescore(1000).margin == 1000.0
    assert Verification.rescore(1e-9).margin == 1e-9
    # Exact and tolerance send no margin.
    assert "margin" not in Job(module=b"m").submission()["verification"]
    tol = Verification.tolerance(1e-3, 0.0, {"o.f32": "f32"})
    assert "margin" not in Job(module=b"m", verification=tol).submission()["verification"]


def test_a_bad_rescore_check_is_refused_before_anything_is_sent() -> None:
    for bad in (0, 0.0, -1.0, -0.0, 1000.0001, 1001, math.nan, math.inf, -math.inf):
        with pytest.raises(sietch.BadCheck, match="above 0 and at most 1000"):
            Verification.rescore(bad)
        # The model's constructor finds the same (pydantic wraps it; a ValueError too).
        with pytest.raises(pydantic.ValidationError, match="above 0 and at most 1000"):
            Verification(comparison="rescore", margin=bad)
    with pytest.raises(sietch.BadCheck):
        Verification.rescore("0.1")  # type: ignore[arg-type]
    with pytest.raises(sietch.BadCheck):
        Verification.rescore(True)
    assert issubclass(sietch.BadCheck, ValueError) and issubclass(sietch.BadCheck, sietch.SietchError)
    # A margin without the rescore comparison is a mistake, not ignored.
    with pytest.raises(pydantic.ValidationError, match='comparison="rescore"'):
        Verification(margin=0.2)
    # Only a generation job of the inference guest can be re-scored.
    with pytest.raises(pydantic.ValidationError, match="generation job"):
        Job(module=b"m", verification=Verification.rescore())
    with pytest.raises(pydantic.ValidationError, match="prompts.jsonl"):
        Job(module=b"m", inputs={sietch.MODEL_INPUT: b"x"}, verification=Verification.rescore())


def generation_node(sent: list[httpx.Request]) -> Handler:
    """A node that takes uploads and answers a generation job at once, checked and paid."""

    def node(req: httpx.Request) -> httpx.Response:
        sent.append(req)
        if req.url.path == "/api/v1/blobs" and req.method == "POST":
            return httpx.Response(200, json={"hash": sietch.blob_hash(req.content), "size": 1})
        if req.url.path.startswith("/api/v1/blobs/"):
            return httpx.Response(404, json={"code": "no_such_blob", "message": "?"})
        assert req.url.path == "/api/v1/jobs" and req.url.params["wait"] == "true"
        line = b'{"index":0,"text":"Paris.","prompt_tokens":9,"completion_tokens":3,"finish":"stop"}\n'
        out = {"outcome": "exited with code 0", "exit_code": 0, "stdout": "",
               "files": {sietch.COMPLETIONS_OUTPUT: base64.b64encode(line).decode()},
               "output_hash": "0x1", "fuel_used": 5, "amount": "12"}  # fmt: skip
        return httpx.Response(200, json={"job_id": JOB_ID, "provider": "0xP", "paid": "12",
                                         "check": "Passed", "millis": 40, "outputs": out})  # fmt: skip

    return node


def sent_verification(sent: list[httpx.Request]) -> object:
    jobs = [r for r in sent if r.url.path == "/api/v1/jobs"]
    assert len(jobs) == 1, [r.url.path for r in sent]
    return json.loads(jobs[0].content)["verification"]


def test_generate_asks_for_the_rescore_check() -> None:
    """``generate(check="rescore", margin=...)`` in both clients (one core): the job carries
    the rescore comparison; without a margin, the CLI's 0.1; ``exact`` stays as it was."""
    model = b"GGUF a tiny model"
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"check": "rescore", "margin": 0.5}, {"comparison": "rescore", "margin": 0.5}),
        ({"check": "rescore"}, {"comparison": "rescore", "margin": 0.1}),
        ({}, {"comparison": "exact"}),
        ({"check": "exact"}, {"comparison": "exact"}),
    ]
    for kw, want in cases:
        sent: list[httpx.Request] = []
        with Client("http://node:1", "t", transport=httpx.MockTransport(generation_node(sent))) as c:
            out = c.generate(["Capital of France?"], model=model, guest=b"guest",
                             sampling_ppm=1_000_000, **kw)  # fmt: skip
        assert out.texts == ["Paris."] and out.job.check == "Passed" and out.job.paid == 12
        assert sent_verification(sent) == {"sampling_ppm": 1_000_000, "reruns": 1, **want}

    # A Generation carries its own check.
    g = sietch.Generation.of(BlobRef("0x" + "cd" * 32), ["x"], check="rescore", margin=2.0)
    assert g.check == "rescore" and g.margin == 2.0
    sent = []
    with Client("http://node:1", "t", transport=httpx.MockTransport(generation_node(sent))) as c:
        c.generate(g, guest=b"guest")
    assert sent_verification(sent) == {
        "sampling_ppm": 100_000, "reruns": 1, "comparison": "rescore", "margin": 2.0
    }  # fmt: skip

    async def run_async() -> object:
        sent.clear()
        handler = generation_node(sent)

        async def anode(req: httpx.Request) -> httpx.Response:
            return handler(req)

        async with sietch.AsyncClient("http://n:1", "t", transport=httpx.MockTransport(anode)) as a:
            out = await a.generate(["x"], model=model, guest=b"guest", check="rescore", margin=0.3)
            assert out.job.check == "Passed"
        return sent_verification(sent)

    assert asyncio.run(run_async()) == {
        "sampling_ppm": 100_000, "reruns": 1, "comparison": "rescore", "margin": 0.3
    }  # fmt: skip


def test_generate_refuses_a_bad_check_before_sending_anything() -> None:
    sent: list[httpx.Request] = []
    bad: list[dict[str, object]] = [
        {"check": "rescore", "margin": m} for m in (0.0, -0.5, 1001.0, math.nan, math.inf)
    ]
    bad += [{"check": "exact", "margin": 0.1}, {"margin": 0.2}, {"check": "tolerance"}]
    with Client("http://node:1", "t", transport=httpx.MockTransport(generation_node(sent))) as c:
        for kw in bad:
            with pytest.raises(sietch.BadCheck):
                c.generate(["x"], model=b"GGUF", guest=b"guest", **kw)  # type: ignore[arg-type]
        g = sietch.Generation.of(BlobRef("0x01"), ["x"])
        with pytest.raises(TypeError):
            c.generate(g, guest=b"guest", check="rescore")

    async def run_async() -> None:
        async def anode(req: httpx.Request) -> httpx.Response:
            return generation_node(sent)(req)

        async with sietch.AsyncClient("http://n:1", "t", transport=httpx.MockTransport(anode)) as a:
            with pytest.raises(sietch.BadCheck):
                await a.generate(["x"], model=b"GGUF", guest=b"guest", check="rescore", margin=-1.0)

    asyncio.run(run_async())
    assert sent == [], [r.url.path for r in sent]
    # The model finds the same.
    with pytest.raises(pydantic.ValidationError, match="above 0"):
        sietch.Generation(model=BlobRef("0x01"), prompts=[], check="rescore", margin=0.0)
    with pytest.raises(pydantic.ValidationError, match='check="rescore"'):
        sietch.Generation(model=BlobRef("0x01"), prompts=[], margin=0.5)
