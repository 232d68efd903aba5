"""Where the training guest's module comes from: bytes, a path or a ``0x`` hash the caller
passes, else :func:`find_train_guest`, as :func:`sietch.generate.find_llm_guest` finds the
inference guest."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SietchError
from ..generate import _repo_roots
from ..job import BlobRef


class NoTrainGuest(SietchError, FileNotFoundError):
    """The training guest ``train.wasm`` was not found (see :func:`find_train_guest`)."""


def find_train_guest() -> Path:
    """The training guest's module, ``train.wasm``: ``$SIETCH_TRAIN_WASM`` when set, else the
    newest build in a Sietch checkout (``$SIETCH_ROOT`` or the current directory and its
    parents): the ``sietch-guests`` crate's build script (``cargo build -p sietch-cli``)
    writes it under ``target/*/build/sietch-guests-*/out/``, ``sandbox/guests/train/build.sh``
    under ``sandbox/guests/train/build/``. Raises :class:`NoTrainGuest` naming where it
    looked."""
    env = os.environ.get("SIETCH_TRAIN_WASM")
    if env:
        p = Path(env)
        if not p.is_file():
            raise NoTrainGuest(f"SIETCH_TRAIN_WASM={env} is not a file")
        return p
    found: list[Path] = []
    for root in _repo_roots():
        found.extend(root.glob("target/*/build/sietch-guests-*/out/train.wasm"))
        found.extend(root.glob("sandbox/guests/train/build/train.wasm"))
    if not found:
        raise NoTrainGuest(
            "no train.wasm: set SIETCH_TRAIN_WASM to the training guest's module, or run from "
            "a Sietch checkout after `cargo build -p sietch-cli` (or sandbox/guests/train/build.sh)"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def train_module(guest: bytes | BlobRef | str | os.PathLike[str] | None) -> bytes | BlobRef:
    """The training guest as given: bytes or a blob as they are, a :class:`BlobRef` for a
    ``0x`` hash, a file's bytes for a path, :func:`find_train_guest` for ``None``."""
    if guest is None:
        return find_train_guest().read_bytes()
    if isinstance(guest, (bytes, BlobRef)):
        return guest
    if isinstance(guest, str) and guest.startswith("0x"):
        return BlobRef(guest)
    return Path(guest).read_bytes()
