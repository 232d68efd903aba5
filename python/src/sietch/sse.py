"""Server-sent events, parsed line by line (the same decoder for both clients), and the
filter that follows one job.

The node's stream (``GET /api/v1/events``) sends messages named ``node`` whose data is a JSON
object with a ``kind``. A subscriber that falls behind gets ``{"kind": "lagged", "missed":
N}`` in place of the events it missed. The decoder keeps the ``id:`` of the messages
(``<run>-<seq>``): a client that reconnects sends it back as ``Last-Event-ID`` and gets the
events it missed that the node still keeps.
"""

from __future__ import annotations

import json

from .errors import DecodeError, TooLarge
from .models import Event


class LineBuffer:
    """Splits a byte stream into lines, holding at most ``limit`` bytes of an unfinished
    line (a stream that sends more without a line end is :class:`TooLarge`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = b""

    def feed(self, chunk: bytes) -> list[str]:
        """The lines ``chunk`` completes."""
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        if len(self._buf) > self.limit:
            raise TooLarge(self.limit)
        return [line.decode("utf-8", "replace") for line in lines]


class SseDecoder:
    """Turns the lines of an event stream into :class:`Event` objects."""

    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self.last_event_id: str | None = None
        """The id of the last message that carried one (sent back on reconnect)."""
        self.retry_ms: int | None = None
        """The reconnection delay the server asked for, if any."""
        self._data: list[str] = []
        self._size = 0
        self._id: str | None = None

    def feed(self, line: str) -> Event | None:
        """Takes one line (without its end); the event it completes, if any."""
        line = line.rstrip("\r\n")
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the keep-alive
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._size += len(value) + 1
            if self._size > self.max_event_bytes:
                raise TooLarge(self.max_event_bytes)
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        if self._id is not None:
            self.last_event_id = self._id
        data, self._data, self._size = "\n".join(self._data), [], 0
        if not data:
            return None
        try:
            value = json.loads(data)
        except ValueError as e:
            raise DecodeError(f"an event that is not JSON: {e}") from e
        return Event.of(value, id=self.last_event_id)


class JobFilter:
    """Which events of a stream belong to job ``job_id``, up to its ``finished``.

    ``lagged`` events are let through too: the stream skipped events, so the job's may be
    among them (the clients then look at the job's record, and end the stream with a
    ``finished`` of their own making if it is final)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.done = False

    def wants(self, e: Event) -> bool:
        """Whether ``e`` is to be handed on (and marks the end at ``finished``)."""
        if self.done:
            return False
        if e.kind == "lagged":
            return True
        if e.job != self.job_id:
            return False
        if e.kind == "finished":
            self.done = True
        return True


def synthetic_finished(job_id: str, state: str) -> Event:
    """The ``finished`` event a client makes from a final record when the stream may have
    lost the node's own (``synthetic: true`` in its data)."""
    return Event.of({"kind": "finished", "job": job_id, "state": state, "synthetic": True})
