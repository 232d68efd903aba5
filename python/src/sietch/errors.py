"""What can go wrong, as exceptions.

Every error the node answers has one JSON form, ``{"code": ..., "message": ..., "detail"?}``,
with a *stable* ``code`` (listed in the node's ``/api/v1/openapi.json`` and in
:class:`ErrorCode`). The SDK raises :class:`ApiError` for it, or the subclass that fits the
code (:class:`NoMatch`, :class:`Unauthorized`, :class:`NotFound`, :class:`BadRequest`,
:class:`JobFailed`, :class:`Busy`, :class:`Unavailable`); ``err.code`` is always the node's
code, so ``except ApiError as e: if e.code == ErrorCode.MISSING_BLOB`` works for any of them.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorCode(str, Enum):
    """The node's stable error codes (the ``code`` of its JSON error form)."""

    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    HOST_NOT_ALLOWED = "host_not_allowed"
    CONNECTIONS_FULL = "connections_full"
    CONNECTIONS_PER_CLIENT = "connections_per_client"
    EVENT_STREAMS_FULL = "event_streams_full"
    EVENT_STREAMS_PER_CLIENT = "event_streams_per_client"
    BODY_TIMEOUT = "body_timeout"
    BAD_BODY = "bad_body"
    BAD_SIDE = "bad_side"
    BAD_STATE = "bad_state"
    BAD_ID = "bad_id"
    NO_SUCH_JOB = "no_such_job"
    NO_SUCH_BLOB = "no_such_blob"
    TOKEN_REQUIRED = "token_required"
    BAD_TOKEN = "bad_token"
    EMPTY_BLOB = "empty_blob"
    BLOB_STORE = "blob_store"
    BLOB_QUOTA = "blob_quota"
    BAD_JOB = "bad_job"
    BAD_INPUT_NAME = "bad_input_name"
    BAD_AVOID = "bad_avoid"
    MISSING_BLOB = "missing_blob"
    CANNOT_SUBMIT = "cannot_submit"
    NO_MATCH = "no_match"
    JOB_FAILED = "job_failed"
    UNAVAILABLE = "unavailable"
    BAD_FUNDING = "bad_funding"
    BAD_AMOUNT = "bad_amount"
    FUNDING_FAILED = "funding_failed"

    def __str__(self) -> str:
        return self.value


class SietchError(Exception):
    """The base of every error this SDK raises."""


class BadUrl(SietchError, ValueError):
    """The node's address is not an ``http://host:port`` URL."""


class BadId(SietchError, ValueError):
    """A job id or blob hash that is not ``0x`` and hex digits (it would go into a URL)."""


class BadCheck(SietchError, ValueError):
    """A spot check the node would refuse, or one that cannot apply, caught before anything
    is sent: a rescore margin that is not finite, not above 0 or over 1000 logits, a margin
    without the rescore check, an unknown check, or the rescore check on a job that is not a
    generation of the inference guest. Where a pydantic model's constructor finds it
    (``Verification(...)``, ``Job(...)``, ``Generation(...)``), pydantic raises it as a
    ``ValidationError`` (a ``ValueError`` too) whose message carries this one's."""


class Unreachable(SietchError):
    """The node could not be reached (refused, reset, timed out)."""

    def __init__(self, url: str, cause: BaseException) -> None:
        super().__init__(f"cannot reach the node at {url}: {cause}")
        self.url = url
        self.cause = cause


class DecodeError(SietchError):
    """The node's answer is not what this SDK understands (another version?)."""


class TooLarge(SietchError):
    """The node's answer, or one event of its stream, is over what the SDK reads."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the node's answer is over the limit of {limit} bytes")
        self.limit = limit


class Timeout(SietchError, TimeoutError):
    """A job did not finish within the time given."""

    def __init__(self, job_id: str, seconds: float) -> None:
        super().__init__(f"job {job_id} did not finish within {seconds:g} s")
        self.job_id = job_id


class ApiError(SietchError):
    """The node answered with an error.

    Attributes:
        status: the HTTP status.
        code: the node's stable error code (an :class:`ErrorCode` value; a code this SDK
            does not know yet stays a plain ``str``).
        message: the node's message: what went wrong and what to do.
        detail: structured facts beside the message, for codes that carry some.
    """

    def __init__(
        self,
        status: int,
        code: ErrorCode | str,
        message: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"the node refused ({status} {code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


class Unauthorized(ApiError):
    """``token_required`` or ``bad_token``: a write without this node's token."""


class NotFound(ApiError):
    """``not_found``, ``no_such_job``, ``no_such_blob``."""


class BadRequest(ApiError):
    """The request was refused as it is (``bad_job``, ``missing_blob``, ``bad_amount``, ...)."""


class JobFailed(ApiError):
    """``job_failed``: the job was submitted but did not give a result that stands."""


class Busy(ApiError):
    """The node is at a cap (connections, event streams, blob quota): try again later."""


class Unavailable(ApiError):
    """``unavailable`` (or another 5xx): the node's machinery failed or is going away."""


class NoMatch(ApiError):
    """``no_match``: no offer in the market can run the job.

    Attributes:
        blocker: the filter that stopped the last offers (``live`` for an empty book,
            ``gpu``, ``cores``, ``memory``, ``inputs``, ``features``, ``price``, ``stake``, or
            ``avoid`` when only the providers the job avoids fit).
        funnel: ``(filter, offers that passed it)``, in the order the filters apply.
    """

    def __init__(
        self,
        status: int,
        code: ErrorCode | str,
        message: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(status, code, message, detail)
        d = detail or {}
        self.blocker: str = str(d.get("blocker", "unknown"))
        self.funnel: list[tuple[str, int]] = [
            (str(s.get("filter", "")), int(s.get("passed", 0)))
            for s in d.get("funnel", [])
            if isinstance(s, dict)
        ]

    def __str__(self) -> str:
        return self.message


_BY_CODE: dict[str, type[ApiError]] = {
    "token_required": Unauthorized,
    "bad_token": Unauthorized,
    "not_found": NotFound,
    "no_such_job": NotFound,
    "no_such_blob": NotFound,
    "no_match": NoMatch,
    "job_failed": JobFailed,
    "funding_failed": ApiError,
    "connections_full": Busy,
    "connections_per_client": Busy,
    "event_streams_full": Busy,
    "event_streams_per_client": Busy,
    "blob_quota": Busy,
    "unavailable": Unavailable,
}


def api_error(status: int, body: object, raw: bytes) -> ApiError:
    """The exception for an error answer: ``body`` is its parsed JSON (or ``None``)."""
    fields = body if isinstance(body, dict) else {}
    code_text = str(fields.get("code") or "unknown")
    message = fields.get("message")
    if not isinstance(message, str):
        message = raw[:600].decode("utf-8", "replace")
    detail = fields.get("detail")
    code: ErrorCode | str
    try:
        code = ErrorCode(code_text)
    except ValueError:
        code = code_text
    cls = _BY_CODE.get(code_text)
    if cls is None:
        cls = Unavailable if status >= 500 else BadRequest
    return cls(status, code, message, detail if isinstance(detail, dict) else None)
