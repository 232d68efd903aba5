"""What both clients share: the node's address and token, and how a :class:`Call` becomes an
``httpx`` request."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import httpx

from ._core import Call
from .errors import BadUrl

DEFAULT_API = "127.0.0.1:7077"
"""A node's API address when its config names none."""
TOKEN_FILE = "api-token"
"""The token's file in a node's data directory."""
CONNECT_TIMEOUT = 10.0
"""Seconds the SDK waits to connect to a node."""
EVENTS_PATH = "/api/v1/events"


def check_url(url: str) -> str:
    """``url`` without a trailing ``/`` if it is ``http://host:port`` (no path, query, user
    or fragment: a token is never sent anywhere else), else :class:`BadUrl`."""
    base = url.rstrip("/")
    rest = base[len("http://") :] if base.startswith("http://") else None
    if not rest or any(c in rest for c in "/?#@"):
        raise BadUrl(f"{url!r} is not a node address like http://127.0.0.1:7077")
    return base


def config_api(config: str) -> str | None:
    """The ``api`` setting of a node's ``config.toml`` (``api = "127.0.0.1:7077"``)."""
    for line in config.splitlines():
        m = re.match(r'^\s*api\s*=\s*"?([^"#\s]+)"?', line)
        if m:
            return m.group(1)
    return None


def read_data_dir(dir: str | os.PathLike[str]) -> tuple[str, str]:
    """``(url, token)`` of the node whose data directory is ``dir``: its token from
    ``api-token`` and its API address from ``config.toml`` (default ``127.0.0.1:7077``)."""
    d = Path(dir)
    token = (d / TOKEN_FILE).read_text().strip()
    try:
        api = config_api((d / "config.toml").read_text()) or DEFAULT_API
    except OSError:
        api = DEFAULT_API
    return f"http://{api}", token


class Base:
    """The address, the token, and the requests built from them."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self._base = check_url(url)
        self._token = token.strip() if token is not None else None
        self._timeout = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)
        self._long = httpx.Timeout(None, connect=CONNECT_TIMEOUT)

    @property
    def url(self) -> str:
        """The node's base URL."""
        return self._base

    @property
    def has_token(self) -> bool:
        """Whether writes will carry a token."""
        return self._token is not None

    def __repr__(self) -> str:
        # Never the token itself: a client is logged more often than it is kept secret.
        return f"{type(self).__name__}({self._base!r}, token={'<set>' if self._token else None})"

    def _headers(self, write: bool) -> dict[str, str]:
        if write and self._token is not None:
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    def _request_args(self, c: Call) -> dict[str, Any]:
        args: dict[str, Any] = {
            "params": c.params or None,
            "headers": self._headers(c.write),
            "timeout": self._long if c.long else self._timeout,
        }
        if c.json is not None:
            args["json"] = c.json
        elif c.content is not None:
            args["content"] = c.content
        return args

    def _events_headers(self, last_event_id: str | None) -> dict[str, str]:
        h = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            h["Last-Event-ID"] = last_event_id
        return h
