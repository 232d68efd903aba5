"""The digits set, its split into a held-out set and shards, and the ``SDG1`` shard format,
byte for byte as ``sietch_sdk::train::digits`` and ``sandbox/guests/train/digits.py``."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import blake3

from .errors import TrainError

PIXELS = 64
"""Pixels of a digit (8 × 8)."""
MAX_PIXEL = 16
"""A pixel's largest value."""
CLASSES = 10
"""Labels 0..9."""
FILE = "digits.csv.gz"
"""The data set's file name in the model cache."""
MAX_BYTES = 16 << 20

_MASK = (1 << 64) - 1


class SplitMix64:
    """splitmix64, the one PRNG of the split, the guest's minibatches and its ``mode=init``."""

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """A number below ``n`` by Lemire's multiply-shift on the top 32 bits."""
        return ((self.next_u64() >> 32) * n) >> 32


def default_path() -> Path:
    """``$SIETCH_MODEL_DIR/digits.csv.gz``, else ``~/.cache/sietch/models/digits.csv.gz``
    (where ``scripts/digits.sh`` puts it)."""
    d = os.environ.get("SIETCH_MODEL_DIR")
    base = Path(d) if d else Path.home() / ".cache" / "sietch" / "models"
    return base / FILE


def cached() -> Path | None:
    """The data set's path if it is in the cache."""
    p = default_path()
    return p if p.is_file() else None


@dataclass(frozen=True)
class Sample:
    """One digit: 64 pixels 0..16 and its label."""

    pixels: bytes
    label: int


@dataclass(frozen=True)
class Split:
    """The held-out set and the shards."""

    held_out: list[Sample]
    shards: list[list[Sample]]


@dataclass(frozen=True)
class Digits:
    """The data set: its samples in file order and ``0x`` + the blake3 hash of the file as
    read (what a checkpoint names)."""

    samples: list[Sample]
    hash: str

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Digits:
        """Reads ``digits.csv.gz`` (gzip or plain CSV); :func:`default_path` for ``None``."""
        p = Path(path) if path is not None else default_path()
        try:
            with p.open("rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except FileNotFoundError as e:
            raise TrainError(
                f"{p}: no digits set there (`bash scripts/digits.sh` puts it in the model cache)"
            ) from e
        except OSError as e:
            raise TrainError(f"{p}: {e}") from e
        if len(raw) > MAX_BYTES:
            raise TrainError(f"{p} is over {MAX_BYTES} bytes: not the digits set")
        return cls.from_bytes(raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Digits:
        h = "0x" + blake3.blake3(raw).hexdigest()
        if raw[:2] == b"\x1f\x8b":
            try:
                text = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error) as e:
                raise TrainError(f"not a readable gzip file: {e}") from e
        else:
            text = raw
        try:
            s = text.decode()
        except UnicodeDecodeError as e:
            raise TrainError("the CSV is not text") from e
        return cls(parse_csv(s), h)

    def split(self, seed: int, held_out: int, shards: int) -> Split:
        """Shuffled by splitmix64 from ``seed`` (Fisher-Yates from the top with
        ``below(i + 1)``), the first ``held_out`` kept aside, the rest dealt in turn."""
        n = len(self.samples)
        if shards <= 0 or held_out < 0 or held_out + shards > n:
            raise TrainError(
                f"{n} samples cannot make {held_out} held out and {shards} shards of at least one"
            )
        order = list(range(n))
        rng = SplitMix64(seed)
        for i in range(n - 1, 0, -1):
            j = rng.below(i + 1)
            order[i], order[j] = order[j], order[i]
        rest = order[held_out:]
        return Split(
            held_out=[self.samples[i] for i in order[:held_out]],
            shards=[[self.samples[i] for i in rest[k::shards]] for k in range(shards)],
        )


def parse_csv(text: str) -> list[Sample]:
    """Rows of 64 pixels (whole numbers 0..16) and a label 0..9, as the Rust reader takes
    them (``1.0`` is 1; ``1.5`` is refused)."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        fields = line.split(",")
        if len(fields) != PIXELS + 1:
            raise TrainError(f"line {i}: {len(fields)} values, not 65")
        vals = []
        for f in fields:
            try:
                v = float(f.strip())
            except ValueError:
                raise TrainError(f"line {i}: {f!r} is not a number") from None
            if v != int(v) or not 0 <= v <= MAX_PIXEL:
                raise TrainError(f"line {i}: {f!r} is not a whole number from 0 to 16")
            vals.append(int(v))
        if vals[-1] >= CLASSES:
            raise TrainError(f"line {i}: label {vals[-1]} is not a digit")
        out.append(Sample(bytes(vals[:PIXELS]), vals[-1]))
    if not out:
        raise TrainError("no samples")
    return out


def encode_sdg(samples: list[Sample]) -> bytes:
    """``SDG1``, u32 n, u32 64, then each record's 64 pixels and its label."""
    out = bytearray(b"SDG1" + struct.pack("<II", len(samples), PIXELS))
    for s in samples:
        out += s.pixels
        out.append(s.label)
    return bytes(out)


def decode_sdg(data: bytes) -> list[Sample]:
    """The records of an ``SDG1`` shard; a malformed one is a :class:`TrainError`."""
    if len(data) < 12:
        raise TrainError("a shard file: shorter than its header")
    if data[:4] != b"SDG1":
        raise TrainError("a shard file: no SDG1 magic")
    n, d = struct.unpack_from("<II", data, 4)
    if d != PIXELS:
        raise TrainError(f"a shard file: {d} pixels a record, not {PIXELS}")
    if len(data) - 12 != n * (PIXELS + 1):
        raise TrainError(f"a shard file: {len(data) - 12} bytes for {n} records")
    r = PIXELS + 1
    return [Sample(data[12 + k * r : 12 + k * r + PIXELS], data[12 + k * r + PIXELS]) for k in range(n)]
