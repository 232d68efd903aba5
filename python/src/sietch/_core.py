"""The clients' one core, without I/O: every operation is a generator that yields what it
needs done (:class:`Call`: an HTTP request; :class:`Sleep`: a pause) and receives the
answer, so the blocking :class:`sietch.Client` and the asyncio :class:`sietch.AsyncClient`
run the very same code (``yield from`` composes the steps: upload, submit, poll).
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import DecodeError, JobFailed, NotFound, Timeout, TooLarge, api_error
from .generate import COMPLETIONS_OUTPUT, Generated, Generation, parse_completions
from .job import BlobRef, Job, blob_hash, check_id
from .models import (
    BlobCache,
    Channel,
    ChainRecord,
    Dispute,
    Finished,
    JobRecord,
    NodeInfo,
    Offer,
    Provider,
    Stats,
    Uploaded,
)

T = TypeVar("T")

MAX_RESPONSE_BYTES = 256 << 20
"""The largest answer the SDK reads from a node (a job's outputs are at most the protocol's
16 MiB result, base64 in JSON)."""

MAX_EVENT_BYTES = 1 << 20
"""The largest single event the SDK reads from a node's event stream."""

ASK_BEFORE_UPLOAD = 256 << 10
"""Blobs at least this large are uploaded only when the node does not hold them already."""

POLL_SECONDS = 0.2
"""How often :meth:`Client.wait` looks at a job."""


@dataclass(frozen=True)
class Call:
    """An HTTP request to the node. ``write`` requests carry the token; reads never do."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    write: bool = False
    long: bool = False
    """The node holds the answer back (``?wait=true``): no read timeout."""


@dataclass(frozen=True)
class Reply:
    """The node's answer to a :class:`Call`."""

    status: int
    body: bytes


@dataclass(frozen=True)
class Sleep:
    """A pause, in seconds."""

    seconds: float


Step = Call | Sleep
Op = Generator[Step, Any, T]
"""An operation: yields steps, receives a :class:`Reply` for each :class:`Call` (``None`` for
a :class:`Sleep`), returns its result."""


def decode(reply: Reply) -> Any:
    """The JSON of a successful answer, or the typed error of a failed one."""
    if len(reply.body) > MAX_RESPONSE_BYTES:
        raise TooLarge(MAX_RESPONSE_BYTES)
    parsed: Any
    try:
        parsed = json.loads(reply.body) if reply.body else None
    except ValueError as e:
        if 200 <= reply.status < 300:
            raise DecodeError(f"not JSON: {e}") from e
        parsed = None
    if not 200 <= reply.status < 300:
        raise api_error(reply.status, parsed, reply.body)
    return parsed


def parse(model: type[T], value: Any) -> T:
    """``value`` as ``model`` (a pydantic model or a type pydantic knows)."""
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(value)
        return TypeAdapter(model).validate_python(value)
    except ValidationError as e:
        raise DecodeError(f"unexpected answer from the node: {e}") from e


def call(c: Call) -> Generator[Step, Any, Any]:
    """One request; its JSON."""
    reply: Reply = yield c
    return decode(reply)


def read(path: str, model: type[T], **params: str) -> Op[T]:
    """``GET path`` (never with the token) as ``model``."""
    return parse(model, (yield from call(Call("GET", path, params=params))))


# ----- reads -----------------------------------------------------------------------------


def node() -> Op[NodeInfo]:
    return (yield from read("/api/v1/node", NodeInfo))


def offers() -> Op[list[Offer]]:
    return (yield from read("/api/v1/offers", list[Offer]))


def providers() -> Op[list[Provider]]:
    return (yield from read("/api/v1/providers", list[Provider]))


def channels() -> Op[list[Channel]]:
    return (yield from read("/api/v1/channels", list[Channel]))


def settlements(kind: str | None, limit: int | None) -> Op[list[ChainRecord]]:
    params = {}
    if kind is not None:
        params["kind"] = kind
    if limit is not None:
        params["limit"] = str(limit)
    return (yield from read("/api/v1/settlements", list[ChainRecord], **params))


def disputes() -> Op[list[Dispute]]:
    return (yield from read("/api/v1/disputes", list[Dispute]))


def stats() -> Op[Stats]:
    return (yield from read("/api/v1/stats", Stats))


def blobs() -> Op[BlobCache]:
    return (yield from read("/api/v1/blobs", BlobCache))


def has_blob(hash: str) -> Op[bool]:
    try:
        yield from call(Call("GET", f"/api/v1/blobs/{check_id(hash)}"))
    except NotFound:
        return False
    return True


def job(id: str, side: str) -> Op[JobRecord]:
    return (yield from read(f"/api/v1/jobs/{check_id(id)}", JobRecord, side=side))


def jobs(side: str, state: str | None, limit: int | None) -> Op[list[JobRecord]]:
    params = {"side": side}
    if state is not None:
        params["state"] = state
    if limit is not None:
        params["limit"] = str(limit)
    return (yield from read("/api/v1/jobs", list[JobRecord], **params))


def evidence(id: str) -> Op[Dispute | None]:
    check_id(id)
    for d in (yield from disputes()):
        if d.job == id:
            return d
    return None


# ----- writes ----------------------------------------------------------------------------


def upload(data: bytes) -> Op[str]:
    """Uploads ``data``; its hash, checked against the one computed here."""
    up = parse(Uploaded, (yield from call(Call("POST", "/api/v1/blobs", content=data, write=True))))
    mine = blob_hash(data)
    if up.hash.lower() != mine:
        raise DecodeError(f"the node named the blob {up.hash}, this SDK computed {mine}")
    return mine


def put(data: bytes) -> Op[str]:
    """``data`` on the node: uploaded unless it is large and the node holds it already."""
    if len(data) >= ASK_BEFORE_UPLOAD and (yield from has_blob(blob_hash(data))):
        return blob_hash(data)
    return (yield from upload(data))


def fund(provider: str, amount: int) -> Op[str]:
    body = {"provider": provider, "amount": str(amount)}
    v = yield from call(Call("POST", "/api/v1/channels", json=body, write=True))
    if not isinstance(v, dict) or not isinstance(v.get("channel"), str):
        raise DecodeError(f"no channel in {v!r:.200}")
    return str(v["channel"])


def prepare(j: Job) -> Op[dict[str, Any]]:
    """Uploads the job's blobs; its submission."""
    seen: set[str] = set()
    for data in j.blobs():
        h = blob_hash(data)
        if h not in seen:
            seen.add(h)
            yield from put(data)
    return j.submission()


def submit(j: Job) -> Op[str]:
    body = yield from prepare(j)
    v = yield from call(Call("POST", "/api/v1/jobs", json=body, write=True))
    if not isinstance(v, dict) or not isinstance(v.get("job_id"), str):
        raise DecodeError(f"no job id in {v!r:.200}")
    return str(v["job_id"])


def wait(id: str, timeout: float) -> Op[JobRecord]:
    """Polls job ``id`` until it is final, for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        rec = yield from job(id, "buyer")
        if rec.is_final:
            return rec
        if time.monotonic() >= deadline:
            raise Timeout(id, timeout)
        yield Sleep(POLL_SECONDS)


def finished_of(rec: JobRecord, millis: int) -> Finished:
    """A :class:`Finished` from a final record, or :class:`JobFailed` when it gave nothing."""
    if rec.state not in ("paid", "done") or rec.outputs is None:
        raise JobFailed(502, "job_failed", f"job {rec.job_id} ended {rec.state}: {rec.note}")
    return Finished(
        job_id=rec.job_id,
        provider=rec.provider or rec.counterparty,
        paid=rec.amount or 0,
        check=rec.check.decision,
        millis=millis,
        outputs=rec.outputs,
    )


def run(j: Job, wait_secs: int | None) -> Op[Finished]:
    """Uploads, submits with ``?wait=true`` and, when the node stops waiting first, polls
    the job until it ends (within its deadline)."""
    body = yield from prepare(j)
    started = time.monotonic()
    params = {"wait": "true"}
    if wait_secs is not None:
        params["wait_secs"] = str(wait_secs)
    # The node answers within its http.wait_secs; give the request room beyond that.
    v = yield from call(
        Call("POST", "/api/v1/jobs", params=params, json=body, write=True, long=True)
    )
    if isinstance(v, dict) and v.get("finished") is False:
        id = v.get("job_id")
        if not isinstance(id, str):
            raise DecodeError("a still-running answer without a job id")
        rec = yield from wait(id, j.deadline_secs)
        return finished_of(rec, int((time.monotonic() - started) * 1000))
    return parse(Finished, v)


def generate(g: Generation, guest: bytes | BlobRef) -> Op[Generated]:
    """Runs a generation: the model goes up only if the node lacks it, then the inference
    guest's job runs and its completions are parsed."""
    model = g.model
    if isinstance(model, bytes):
        model = BlobRef((yield from put(model)))
    done = yield from run(g.job(guest, model), None)
    completions = parse_completions(done.outputs.file(COMPLETIONS_OUTPUT) or b"")
    return Generated(completions=completions, job=done)
