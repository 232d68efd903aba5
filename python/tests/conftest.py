"""One real devnet for the whole session: ``target/debug/sietch devnet`` (a local chain, the
escrow, three provider nodes and a buyer node), its API on a free port, its log in the
session's temporary directory, stopped with its whole process group at the end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root."""

BIN = Path(os.environ.get("SIETCH_BIN", ROOT / "target" / "debug" / "sietch"))
START_SECS = 180.0
"""How long the devnet may take to start (anvil, the escrow, four nodes, their offers)."""


@dataclass
class Devnet:
    """A running devnet: the buyer's API, its token and data directory, the log."""

    url: str
    token: str
    data_dir: Path
    log: Path

    def tail(self, n: int = 3000) -> str:
        """The end of the devnet's log, for a failure's message."""
        return self.log.read_text(errors="replace")[-n:]


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for_binary() -> None:
    # Another session may be relinking target/debug/sietch right now: give it a minute.
    for _ in range(60):
        if BIN.is_file():
            return
        time.sleep(1)
    pytest.fail(f"{BIN} is missing: build it with `cargo build -p sietch-cli` (or set SIETCH_BIN)")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C to the devnet (it settles and exits), then whatever is left of its group."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """Starts ``sietch devnet`` once for the session (one job in flight in the background,
    no generation of its own) and stops it at the end."""
    _wait_for_binary()
    tmp = tmp_path_factory.mktemp("devnet")
    log = tmp / "devnet.log"
    port = free_port()
    env = dict(os.environ)
    # The devnet keeps its nodes' data directories under TMPDIR: here, so that the buyer's
    # token is found (the SDK's from_data_dir reads it there).
    env["TMPDIR"] = str(tmp)
    env["SIETCH_ROOT"] = str(ROOT)
    env["PATH"] = f"{ROOT / 'tools' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    args = [
        str(BIN), "devnet", "--providers", "3", "--api-port", str(port), "--jobs", "0",
        "--concurrency", "1", "--generate-every", "0",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the devnet exited ({proc.returncode}) before its API answered:\n"
                            + log.read_text(errors="replace")[-3000:])
            tokens = list(tmp.glob(".tmp*/buyer/api-token"))
            try:
                offers = httpx.get(f"{url}/api/v1/offers", timeout=2).json()
                if tokens and isinstance(offers, list) and len(offers) >= 3:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the devnet's API did not show 3 offers at {url} within "
                            f"{START_SECS:.0f} s:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        data_dir = tokens[0].parent
        yield Devnet(url, (data_dir / "api-token").read_text().strip(), data_dir, log)
    finally:
        _stop(proc)
