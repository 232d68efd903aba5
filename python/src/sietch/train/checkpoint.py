"""Checkpoints: the Rust driver's layout (``sietch_sdk::train::checkpoint``), so either
driver resumes the other's.

A directory holds ``weights-NNNN.swt`` (the weights after round NNNN), ``history.json`` (the
rounds' reports) and ``checkpoint.json`` (format version 1, the round, the weights file and
its ``0x`` blake3 hash, the data set's hash, the configuration, the reports), each written
to a temporary file and renamed into place, in that order; older weights files are removed
after. A run stopped at any moment leaves a checkpoint naming a complete weights file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from .config import TrainConfig
from .errors import CheckpointError, TrainError
from .report import RoundReport
from .weights import Weights

FILE = "checkpoint.json"
HISTORY = "history.json"
VERSION = 1
MAX_JSON = 64 << 20


def weights_file(round: int) -> str:
    return f"weights-{round:04}.swt"


def _write_atomic(dir: Path, name: str, data: bytes) -> None:
    tmp = dir / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, dir / name)


def _pretty(v: Any) -> bytes:
    return (json.dumps(v, indent=2) + "\n").encode()


@dataclass
class Checkpoint:
    round: int
    data: str
    """The data set's ``0x`` blake3 hash (of the file as read)."""
    config: TrainConfig
    weights: Weights
    history: list[RoundReport]

    @staticmethod
    def exists(dir: str | os.PathLike[str]) -> bool:
        return (Path(dir) / FILE).is_file()

    def save(self, dir: str | os.PathLike[str]) -> None:
        d = Path(dir)
        try:
            d.mkdir(parents=True, exist_ok=True)
            data = self.weights.encode()
            name = weights_file(self.round)
            _write_atomic(d, name, data)
            history = [r.json_dict() for r in self.history]
            disk = {
                "version": VERSION,
                "round": self.round,
                "weights_file": name,
                "weights_hash": "0x" + blake3.blake3(data).hexdigest(),
                "data": self.data,
                "config": self.config.json_dict(),
                "history": history,
            }
            _write_atomic(d, HISTORY, _pretty(history))
            _write_atomic(d, FILE, _pretty(disk))
            for e in d.iterdir():
                if e.name.startswith("weights-") and e.name.endswith(".swt") and e.name != name:
                    e.unlink(missing_ok=True)
        except OSError as e:
            raise CheckpointError(f"{d}: {e}") from e

    @classmethod
    def load(cls, dir: str | os.PathLike[str]) -> Checkpoint:
        d = Path(dir)

        def bad(why: str) -> CheckpointError:
            return CheckpointError(f"checkpoint {d}: {why}")

        try:
            path = d / FILE
            if path.stat().st_size > MAX_JSON:
                raise bad(f"{FILE} is over {MAX_JSON} bytes")
            disk = json.loads(path.read_bytes())
            if not isinstance(disk, dict):
                raise bad(f"{FILE} is not an object")
            if disk.get("version") != VERSION:
                raise bad(f"format version {disk.get('version')}, not {VERSION}")
            round = disk["round"]
            if not isinstance(round, int) or disk.get("weights_file") != weights_file(round):
                raise bad(f"it names {disk.get('weights_file')!r}")
            data = (d / disk["weights_file"]).read_bytes()
            if "0x" + blake3.blake3(data).hexdigest() != disk.get("weights_hash"):
                raise bad(f"{disk['weights_file']} does not have the hash it names")
            history = [RoundReport.from_json(r) for r in disk["history"]]
            if len(history) != round:
                raise bad(f"{round} rounds done but {len(history)} reports")
            return cls(
                round=round,
                data=str(disk["data"]),
                config=TrainConfig.model_validate(disk["config"]),
                weights=Weights.decode(data),
                history=history,
            )
        except CheckpointError:
            raise
        except (OSError, ValueError, KeyError, TypeError, TrainError) as e:
            raise bad(str(e)) from e
