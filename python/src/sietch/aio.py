"""The asyncio client: :class:`sietch.Client`'s methods, awaited. Both run the same
operations (``sietch._core``); only the I/O differs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from types import TracebackType

import httpx

from . import _core as core
from ._base import EVENTS_PATH, Base, read_data_dir
from ._core import Call, Op, Reply, Sleep, T
from .client import _generation, _json_or_none
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


class AsyncClient(Base):
    """A connection to a Sietch node's HTTP API, for asyncio: the methods of
    :class:`sietch.Client`, as coroutines (see there). Use it as an async context manager,
    or await :meth:`aclose`."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, timeout)
        self._http = httpx.AsyncClient(
            base_url=self._base, follow_redirects=False, timeout=self._timeout, transport=transport
        )

    @classmethod
    def from_data_dir(
        cls, dir: str | os.PathLike[str], *, url: str | None = None, timeout: float = 60.0
    ) -> AsyncClient:
        """A client for the node whose data directory is ``dir`` (see
        :meth:`sietch.Client.from_data_dir`)."""
        found, token = read_data_dir(dir)
        return cls(url or found, token, timeout=timeout)

    async def aclose(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ----- the driver ------------------------------------------------------------------

    async def _send(self, c: Call) -> Reply:
        try:
            async with self._http.stream(c.method, c.path, **self._request_args(c)) as resp:
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > core.MAX_RESPONSE_BYTES:
                        raise TooLarge(core.MAX_RESPONSE_BYTES)
                return Reply(resp.status_code, bytes(body))
        except httpx.TransportError as e:
            raise Unreachable(self._base, e) from e

    async def _drive(self, op: Op[T]) -> T:
        try:
            step = next(op)
            while True:
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    step = op.send(None)
                else:
                    step = op.send(await self._send(step))
        except StopIteration as done:
            result: T = done.value
            return result

    # ----- reads -----------------------------------------------------------------------

    async def node(self) -> NodeInfo:
        """See :meth:`sietch.Client.node`."""
        return await self._drive(core.node())

    async def offers(self) -> list[Offer]:
        """See :meth:`sietch.Client.offers`."""
        return await self._drive(core.offers())

    async def providers(self) -> list[Provider]:
        """See :meth:`sietch.Client.providers`."""
        return await self._drive(core.providers())

    async def channels(self) -> list[Channel]:
        """See :meth:`sietch.Client.channels`."""
        return await self._drive(core.channels())

    async def settlements(
        self, kind: str | None = None, limit: int | None = None
    ) -> list[ChainRecord]:
        """See :meth:`sietch.Client.settlements`."""
        return await self._drive(core.settlements(kind, limit))

    async def disputes(self) -> list[Dispute]:
        """See :meth:`sietch.Client.disputes`."""
        return await self._drive(core.disputes())

    async def stats(self) -> Stats:
        """See :meth:`sietch.Client.stats`."""
        return await self._drive(core.stats())

    async def blobs(self) -> BlobCache:
        """See :meth:`sietch.Client.blobs`."""
        return await self._drive(core.blobs())

    async def has_blob(self, hash: str) -> bool:
        """See :meth:`sietch.Client.has_blob`."""
        return await self._drive(core.has_blob(hash))

    async def job(self, id: str, *, side: str = "buyer") -> JobRecord:
        """See :meth:`sietch.Client.job`."""
        return await self._drive(core.job(id, side))

    async def jobs(
        self, *, side: str = "buyer", state: str | None = None, limit: int | None = None
    ) -> list[JobRecord]:
        """See :meth:`sietch.Client.jobs`."""
        return await self._drive(core.jobs(side, state, limit))

    async def evidence(self, id: str) -> Dispute | None:
        """See :meth:`sietch.Client.evidence`."""
        return await self._drive(core.evidence(id))

    async def wait(self, id: str, timeout: float = 600.0) -> JobRecord:
        """See :meth:`sietch.Client.wait`."""
        return await self._drive(core.wait(id, timeout))

    # ----- writes ----------------------------------------------------------------------

    async def upload(self, data: bytes) -> str:
        """See :meth:`sietch.Client.upload`."""
        return await self._drive(core.upload(data))

    async def put(self, data: bytes) -> str:
        """See :meth:`sietch.Client.put`."""
        return await self._drive(core.put(data))

    async def fund(self, provider: str, amount: int) -> str:
        """See :meth:`sietch.Client.fund`."""
        return await self._drive(core.fund(provider, amount))

    async def submit(self, job: Job) -> str:
        """See :meth:`sietch.Client.submit`."""
        return await self._drive(core.submit(job))

    async def run(self, job: Job, *, wait_secs: int | None = None) -> Finished:
        """See :meth:`sietch.Client.run`."""
        return await self._drive(core.run(job, wait_secs))

    async def generate(
        self,
        prompts: Sequence[str | Prompt] | Generation,
        *,
        model: bytes | BlobRef | str | os.PathLike[str] | None = None,
        guest: bytes | BlobRef | str | os.PathLike[str] | None = None,
        check: Check = "exact",
        margin: float | None = None,
        **limits: int,
    ) -> Generated:
        """See :meth:`sietch.Client.generate` (``check="rescore"`` with ``margin`` re-scores
        a sampled generation instead of generating it again)."""
        g = _generation(prompts, model, limits, check, margin)
        return await self._drive(core.generate(g, guest_module(guest)))

    # ----- events ----------------------------------------------------------------------

    async def events(
        self, *, reconnect: bool = False, since: str | None = None
    ) -> AsyncEventStream:
        """See :meth:`sietch.Client.events` (the stream is open when this returns)."""
        s = AsyncEventStream(self, reconnect, since)
        await s._open()
        return s

    async def follow(self, id: str) -> AsyncJobEvents:
        """See :meth:`sietch.Client.follow`."""
        stream = await self.events(reconnect=True)
        try:
            rec = await self.job(id)
        except BaseException:
            await stream.aclose()
            raise
        return AsyncJobEvents(self, stream, id, rec.state if rec.is_final else None)

    progress = follow
    """The Rust SDK's name of :meth:`follow`."""

    async def submit_and_follow(self, job: Job) -> tuple[str, AsyncJobEvents]:
        """See :meth:`sietch.Client.submit_and_follow`."""
        stream = await self.events(reconnect=True)
        try:
            id = await self.submit(job)
        except BaseException:
            await stream.aclose()
            raise
        return id, AsyncJobEvents(self, stream, id, None)


class AsyncEventStream(AsyncIterator[Event]):
    """The node's live events, for ``async for`` (see :class:`sietch.EventStream`)."""

    def __init__(self, client: AsyncClient, reconnect: bool, since: str | None = None) -> None:
        self._client = client
        self._reconnect = reconnect
        self._decoder = SseDecoder(core.MAX_EVENT_BYTES)
        self._decoder.last_event_id = since
        self._resp: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._lines = LineBuffer(core.MAX_EVENT_BYTES)
        self._pending: list[Event] = []
        self._closed = False

    @property
    def last_event_id(self) -> str | None:
        """The id of the last event read: see :attr:`sietch.EventStream.last_event_id`."""
        return self._decoder.last_event_id

    async def _open(self) -> None:
        c = self._client
        req = c._http.build_request(
            "GET",
            EVENTS_PATH,
            headers=c._events_headers(self._decoder.last_event_id),
            timeout=c._long,
        )
        try:
            resp = await c._http.send(req, stream=True)
        except httpx.TransportError as e:
            raise Unreachable(c.url, e) from e
        if resp.status_code != 200:
            body = (await resp.aread())[:4096]
            await resp.aclose()
            raise api_error(resp.status_code, _json_or_none(body), body)
        self._resp = resp
        self._chunks = resp.aiter_bytes()
        self._lines = LineBuffer(core.MAX_EVENT_BYTES)

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._pending:
                return self._pending.pop(0)
            if self._closed or self._chunks is None:
                raise StopAsyncIteration
            try:
                chunk = await self._chunks.__anext__()
            except (StopAsyncIteration, httpx.TransportError, httpx.StreamError):
                if self._resp is not None:
                    await self._resp.aclose()
                if not self._reconnect or self._closed:
                    self._closed = True
                    raise StopAsyncIteration from None
                await self._open()
                gap = {"kind": "reconnected", "last_event_id": self._decoder.last_event_id}
                return Event.of(gap)
            for line in self._lines.feed(chunk):
                e = self._decoder.feed(line)
                if e is not None:
                    self._pending.append(e)

    async def aclose(self) -> None:
        """Closes the stream."""
        self._closed = True
        if self._resp is not None:
            await self._resp.aclose()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class AsyncJobEvents(AsyncIterator[Event]):
    """One job's events, for ``async for`` (see :class:`sietch.JobEvents`)."""

    def __init__(
        self, client: AsyncClient, stream: AsyncEventStream, id: str, final: str | None
    ) -> None:
        self.job_id = id
        self._client = client
        self._stream = stream
        self._filter = JobFilter(id)
        self._final = final

    def __aiter__(self) -> AsyncJobEvents:
        return self

    async def __anext__(self) -> Event:
        if self._final is not None:
            state, self._final = self._final, None
            self._filter.done = True
            await self.aclose()
            return synthetic_finished(self.job_id, state)
        if self._filter.done:
            await self.aclose()
            raise StopAsyncIteration
        async for e in self._stream:
            if not self._filter.wants(e) and e.kind != "reconnected":
                continue
            if e.kind in ("lagged", "reconnected"):
                rec = await self._client.job(self.job_id)
                if rec.is_final:
                    self._final = rec.state
            return e
        self._filter.done = True
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Closes the stream under it."""
        await self._stream.aclose()

    async def __aenter__(self) -> AsyncJobEvents:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
