"""The blocking client."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import httpx

from . import _core as core
from ._base import EVENTS_PATH, Base, read_data_dir
from ._core import Call, Op, Reply, Sleep, T
from .errors import TooLarge, Unreachable, api_error
from .generate import Check, Generated, Generation, Prompt, guest_module
from .job import BlobRef, Job
from .models import (
    BlobCache,
    ChainRecord,
    Channel,
    Dispute,
    Event,
    Finished,
    JobRecord,
    NodeInfo,
    Offer,
    Provider,
    Stats,
)
from .sse import JobFilter, LineBuffer, SseDecoder, synthetic_finished


class Client(Base):
    """A connection to a Sietch node's HTTP API (blocking; :class:`sietch.AsyncClient` is
    the same for asyncio).

    Reads go out without the token; writes (:meth:`upload`, :meth:`submit`, :meth:`run`,
    :meth:`fund`, :meth:`generate`) carry it as ``Authorization: Bearer``. The client
    follows no redirects, so a write is never re-sent elsewhere. Use it as a context manager,
    or call :meth:`close`.

    Args:
        url: the node's API, ``http://host:port``.
        token: the node's API token (``<data dir>/api-token``); without it the client reads
            only.
        timeout: seconds to wait for an answer (a ``?wait=true`` submission waits as long
            as the node holds it).
        transport: an ``httpx`` transport, for tests.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, timeout)
        self._http = httpx.Client(
            base_url=self._base, follow_redirects=False, timeout=self._timeout, transport=transport
        )

    @classmethod
    def from_data_dir(
        cls, dir: str | os.PathLike[str], *, url: str | None = None, timeout: float = 60.0
    ) -> Client:
        """A client for the node whose data directory is ``dir``: the token from its
        ``api-token``, the address from its ``config.toml`` (``api``, default
        ``127.0.0.1:7077``) unless ``url`` is given."""
        found, token = read_data_dir(dir)
        return cls(url or found, token, timeout=timeout)

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----- the driver ------------------------------------------------------------------

    def _send(self, c: Call) -> Reply:
        try:
            with self._http.stream(c.method, c.path, **self._request_args(c)) as resp:
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > core.MAX_RESPONSE_BYTES:
                        raise TooLarge(core.MAX_RESPONSE_BYTES)
                return Reply(resp.status_code, bytes(body))
        except httpx.TransportError as e:
            raise Unreachable(self._base, e) from e

    def _drive(self, op: Op[T]) -> T:
        try:
            step = next(op)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = op.send(None)
                else:
                    step = op.send(self._send(step))
        except StopIteration as done:
            result: T = done.value
            return result

    # ----- reads -----------------------------------------------------------------------

    def node(self) -> NodeInfo:
        """The node: identity, peers, counters, chain."""
        return self._drive(core.node())

    def offers(self) -> list[Offer]:
        """The live offers of the node's order book."""
        return self._drive(core.offers())

    def providers(self) -> list[Provider]:
        """Providers with their stake and reputation."""
        return self._drive(core.providers())

    def channels(self) -> list[Channel]:
        """The node's payment channels (listed once their open landed on chain)."""
        return self._drive(core.channels())

    def settlements(self, kind: str | None = None, limit: int | None = None) -> list[ChainRecord]:
        """Recent escrow events (claims, tickets, disputes, slashes), of ``kind`` if given."""
        return self._drive(core.settlements(kind, limit))

    def disputes(self) -> list[Dispute]:
        """Claimed, disputed and withheld tickets, their votes, outcome and evidence."""
        return self._drive(core.disputes())

    def stats(self) -> Stats:
        """Jobs, checks, charges and fuel in 10-second buckets (the last hour)."""
        return self._drive(core.stats())

    def blobs(self) -> BlobCache:
        """The node's blob store: what it holds (modules, inputs, models)."""
        return self._drive(core.blobs())

    def has_blob(self, hash: str) -> bool:
        """Whether the node holds blob ``hash`` (``0x`` and its blake3 hash)."""
        return self._drive(core.has_blob(hash))

    def job(self, id: str, *, side: str = "buyer") -> JobRecord:
        """Job ``id`` as the node stored it, with its outputs once finished."""
        return self._drive(core.job(id, side))

    def jobs(
        self, *, side: str = "buyer", state: str | None = None, limit: int | None = None
    ) -> list[JobRecord]:
        """The node's jobs, newest first (``state`` filters, ``limit`` at most 1000)."""
        return self._drive(core.jobs(side, state, limit))

    def evidence(self, id: str) -> Dispute | None:
        """The spot check's evidence against the provider of job ``id``, if it was found
        wrong (and the node withheld its payment): its decision and the signed commitments
        of the original run and the re-runs."""
        return self._drive(core.evidence(id))

    def wait(self, id: str, timeout: float = 600.0) -> JobRecord:
        """Waits until job ``id`` is paid, refused or failed, polling, for up to
        ``timeout`` seconds (:class:`sietch.Timeout` after)."""
        return self._drive(core.wait(id, timeout))

    # ----- writes ----------------------------------------------------------------------

    def upload(self, data: bytes) -> str:
        """Uploads a blob (module, stdin, input, model); its ``0x`` blake3 hash (checked
        against the one computed here)."""
        return self._drive(core.upload(data))

    def put(self, data: bytes) -> str:
        """Like :meth:`upload`, but a large blob (256 KiB or more) goes up only when the node
        does not hold it already."""
        return self._drive(core.put(data))

    def fund(self, provider: str, amount: int) -> str:
        """Puts ``amount`` token base units into a channel to ``provider`` (an EVM address):
        tops up an open one or opens one; the channel's id. Jobs fund their channels by
        themselves; this puts the money in place first."""
        return self._drive(core.fund(provider, amount))

    def submit(self, job: Job) -> str:
        """Uploads the job's blobs and submits it; its id, at once."""
        return self._drive(core.submit(job))

    def run(self, job: Job, *, wait_secs: int | None = None) -> Finished:
        """Uploads, submits and waits: returns when the result is verified (where the job
        was sampled) and paid. A job whose provider was found wrong returns with ``paid ==
        0``; one that failed raises :class:`sietch.JobFailed`, one nobody can run
        :class:`sietch.NoMatch`."""
        return self._drive(core.run(job, wait_secs))

    def generate(
        self,
        prompts: Sequence[str | Prompt] | Generation,
        *,
        model: bytes | BlobRef | str | os.PathLike[str] | None = None,
        guest: bytes | BlobRef | str | os.PathLike[str] | None = None,
        check: Check = "exact",
        margin: float | None = None,
        **limits: int,
    ) -> Generated:
        """Text from a language model on the market, in one call: ``prompts`` through
        ``model`` (a GGUF file's path or bytes, uploaded only when the node lacks it, or
        the ``0x`` hash of a blob it holds), run by the inference guest ``guest`` (default:
        :func:`sietch.find_llm_guest`); ``limits`` are :class:`sietch.Generation`'s
        (``fuel``, ``memory_bytes``, ``wall_time_ms``, ``sampling_ppm``, ``price_cap``).
        Returns the completions, tokens, tokens per second and cost; ``job.check`` is the
        spot check's decision (``"Passed"``) when the job was sampled.

        ``check`` is how a sampled job is checked: ``"exact"`` (generated again elsewhere,
        the outputs' hashes compared) or ``"rescore"`` (another provider re-scores the
        claimed completions with the model, and they pass when every chosen token is within
        ``margin`` logits of the model's best one: for GPU providers, whose text may differ
        from the CPU's bit for bit). ``margin`` goes only with ``"rescore"``; without it,
        :data:`sietch.DEFAULT_RESCORE_MARGIN` (0.1, as ``sietch generate --check rescore``).
        A margin the node would refuse (not finite, not above 0, over
        :data:`sietch.MAX_RESCORE_MARGIN`), a margin with ``"exact"`` or another check raise
        :class:`sietch.BadCheck` before anything is sent. Example::

            out = node.generate(["What is the capital of France?"], model="model.gguf",
                                check="rescore", margin=0.1, sampling_ppm=1_000_000)
            assert out.job.check == "Passed"

        With a :class:`sietch.Generation` as ``prompts``, give ``check`` and ``margin`` to
        it, not here."""
        g = _generation(prompts, model, limits, check, margin)
        return self._drive(core.generate(g, guest_module(guest)))

    # ----- events ----------------------------------------------------------------------

    def events(self, *, reconnect: bool = False, since: str | None = None) -> EventStream:
        """Every event of the node, live (server-sent events), from now on, or from after
        the event whose id is ``since`` (an earlier stream's :attr:`EventStream.last_event_id`):
        the node first sends the events it still keeps since then, and one ``lagged`` event
        for any it no longer keeps (``missed`` is ``None`` if the node restarted). With
        ``reconnect``, a stream the node closes is opened again, from its last event id, and
        a ``reconnected`` event marks the gap."""
        return EventStream(self, reconnect, since)

    def follow(self, id: str) -> JobEvents:
        """The events of job ``id``, live, up to its ``finished``. It listens first, then
        looks: an event between the two is not lost, and a job already final gives one
        ``finished``."""
        stream = self.events(reconnect=True)
        try:
            rec = self.job(id)
        except BaseException:
            stream.close()
            raise
        return JobEvents(self, stream, id, rec.state if rec.is_final else None)

    progress = follow
    """The Rust SDK's name of :meth:`follow`."""

    def submit_and_follow(self, job: Job) -> tuple[str, JobEvents]:
        """Submits ``job`` and follows it: its id and its events up to its ``finished``,
        none missed (the stream is open before the job is submitted)."""
        stream = self.events(reconnect=True)
        try:
            id = self.submit(job)
        except BaseException:
            stream.close()
            raise
        return id, JobEvents(self, stream, id, None)


def _generation(
    prompts: Sequence[str | Prompt] | Generation,
    model: bytes | BlobRef | str | os.PathLike[str] | None,
    limits: dict[str, int],
    check: Check = "exact",
    margin: float | None = None,
) -> Generation:
    if isinstance(prompts, Generation):
        if check != "exact" or margin is not None:
            raise TypeError("generate(Generation(...)) takes check and margin from the Generation")
        return prompts
    if model is None:
        raise TypeError("generate() needs model=: a GGUF file, its bytes, or a 0x blob hash")
    return Generation.of(model, prompts, check=check, margin=margin, **limits)


class EventStream(Iterator[Event]):
    """The node's live events (iterate it; close it, or use it as a context manager)."""

    def __init__(self, client: Client, reconnect: bool, since: str | None = None) -> None:
        self._client = client
        self._reconnect = reconnect
        self._decoder = SseDecoder(core.MAX_EVENT_BYTES)
        self._decoder.last_event_id = since
        self._resp: httpx.Response | None = None
        self._chunks: Iterator[bytes] = iter(())
        self._pending: list[Event] = []
        self._closed = False
        self._open()

    @property
    def last_event_id(self) -> str | None:
        """The id of the last event read (``<run>-<seq>``): give it as ``since`` to a new
        stream to get what came after it."""
        return self._decoder.last_event_id

    def _open(self) -> None:
        c = self._client
        req = c._http.build_request(
            "GET",
            EVENTS_PATH,
            headers=c._events_headers(self._decoder.last_event_id),
            timeout=c._long,
        )
        try:
            resp = c._http.send(req, stream=True)
        except httpx.TransportError as e:
            raise Unreachable(c.url, e) from e
        if resp.status_code != 200:
            body = resp.read()[:4096]
            resp.close()
            raise api_error(resp.status_code, _json_or_none(body), body)
        self._resp = resp
        self._chunks = resp.iter_bytes()
        self._lines = LineBuffer(core.MAX_EVENT_BYTES)

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        while True:
            if self._pending:
                return self._pending.pop(0)
            if self._closed:
                raise StopIteration
            try:
                chunk = next(self._chunks)
            except (StopIteration, httpx.TransportError, httpx.StreamError):
                if self._resp is not None:
                    self._resp.close()
                if not self._reconnect or self._closed:
                    self._closed = True
                    raise StopIteration from None
                self._open()
                gap = {"kind": "reconnected", "last_event_id": self._decoder.last_event_id}
                return Event.of(gap)
            for line in self._lines.feed(chunk):
                e = self._decoder.feed(line)
                if e is not None:
                    self._pending.append(e)

    def close(self) -> None:
        """Closes the stream."""
        self._closed = True
        if self._resp is not None:
            self._resp.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class JobEvents(Iterator[Event]):
    """One job's events, live, ending with its ``finished``. Where the stream lost events
    (``lagged``, ``reconnected``), the job's record is read: a final one ends the iteration
    with a ``finished`` made from it (``data["synthetic"]`` is true), so it never hangs on
    an event it missed."""

    def __init__(self, client: Client, stream: EventStream, id: str, final: str | None) -> None:
        self.job_id = id
        self._client = client
        self._stream = stream
        self._filter = JobFilter(id)
        self._final = final

    def __iter__(self) -> JobEvents:
        return self

    def __next__(self) -> Event:
        if self._final is not None:
            state, self._final = self._final, None
            self._filter.done = True
            self.close()
            return synthetic_finished(self.job_id, state)
        if self._filter.done:
            self.close()
            raise StopIteration
        for e in self._stream:
            if not self._filter.wants(e) and e.kind != "reconnected":
                continue
            if e.kind in ("lagged", "reconnected"):
                rec = self._client.job(self.job_id)
                if rec.is_final:
                    self._final = rec.state
            return e
        self._filter.done = True
        raise StopIteration

    def close(self) -> None:
        """Closes the stream under it."""
        self._stream.close()

    def __enter__(self) -> JobEvents:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _json_or_none(body: bytes) -> Any:
    import json

    try:
        return json.loads(body)
    except ValueError:
        return None
