"""A run's configuration and its jobs' seeds and arguments, as ``sietch_sdk::train::config``
(the same JSON in a checkpoint, the same seeds, the same argument strings)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import blake3
from pydantic import BaseModel, ConfigDict, Field

from .digits import CLASSES, PIXELS
from .errors import TrainError
from .weights import Aggregate, Weights, f32

MAX_SHARDS = 256
MAX_ATTEMPTS = 16


class JobLimits(BaseModel):
    """What each shard job may use and pay, and how it is checked."""

    model_config = ConfigDict(extra="forbid")

    fuel: int = Field(default=1_000_000_000, ge=0)
    memory_bytes: int = Field(default=64 << 20, ge=0)
    wall_time_ms: int = Field(default=60_000, ge=0)
    sampling_ppm: int = Field(default=100_000, ge=0, le=1_000_000)
    """Share of jobs spot-checked, parts per million."""
    reruns: int = Field(default=1, ge=0, le=255)
    price_cap: str = str(10**18)
    """The most a job may cost, token base units, as a decimal string (as in the Rust
    checkpoint)."""
    deadline_secs: int = Field(default=300, ge=0)


class TrainConfig(BaseModel):
    """A run: the split, the local steps, the model, the aggregation, the jobs' limits and
    the driver's patience. Defaults as the Rust driver's and ``sietch train digits``."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(default=10, ge=0)
    shards: int = 3
    held_out: int = Field(default=297, ge=0)
    steps: int = 20
    batch: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    optimizer: Literal["sgdm", "adamw"] = "sgdm"
    weight_decay: float = 0.0
    seed: int = Field(default=1, ge=0, lt=1 << 64)
    dims: list[int] = Field(default_factory=lambda: [64, 32, 10])
    aggregate: Aggregate = "mean"
    limits: JobLimits = Field(default_factory=JobLimits)
    straggler_secs: int = Field(default=120, ge=0)
    """A shard whose job has run this long without an end is submitted again (the first
    one keeps running: whichever delivers first is taken)."""
    max_attempts: int = 4

    def check(self, samples: int) -> None:
        """A :class:`TrainError` naming the first setting out of range."""
        if not 1 <= self.shards <= MAX_SHARDS:
            raise TrainError(f"{self.shards} shards (1 to {MAX_SHARDS})")
        if self.held_out + self.shards > samples:
            raise TrainError(f"{self.held_out} held out and {self.shards} shards from {samples} samples")
        if not (1 <= self.steps <= 100_000 and 1 <= self.batch <= 4096):
            raise TrainError("1 to 100000 steps and a batch of 1 to 4096")
        if not 0 < f32(self.lr) <= 1000:
            raise TrainError(f"lr {self.lr}: want a number in (0, 1000]")
        if not 0 <= f32(self.momentum) <= f32(0.999999):
            raise TrainError(f"momentum {self.momentum}: want [0, 0.999999]")
        if not 0 <= f32(self.weight_decay) <= 1000:
            raise TrainError(f"weight decay {self.weight_decay}: want [0, 1000]")
        if not self.dims or self.dims[0] != PIXELS or self.dims[-1] != CLASSES:
            raise TrainError(f"dims {self.dims}: the digits model takes 64 inputs and gives 10 classes")
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise TrainError(f"{self.max_attempts} attempts a shard (1 to {MAX_ATTEMPTS})")
        Weights.zeros(self.dims)

    def job_seed(self, round: int, shard: int) -> int:
        """The seed of shard ``shard`` in round ``round`` (from 0): the first 8 bytes,
        little-endian, of blake3(``"sietch-train seed"`` ‖ seed u64 ‖ round u32 ‖ shard u32),
        all little-endian. Every attempt at a shard gets the same one."""
        h = blake3.blake3(
            b"sietch-train seed"
            + self.seed.to_bytes(8, "little")
            + round.to_bytes(4, "little")
            + shard.to_bytes(4, "little")
        ).digest()
        return int.from_bytes(h[:8], "little")

    def job_args(self, round: int, shard: int) -> list[str]:
        """The guest's arguments for a shard job (``round`` from 0), the same strings the
        Rust driver writes (floats as their shortest float32 decimal)."""
        return [
            "mode=train",
            f"steps={self.steps}",
            f"batch={self.batch}",
            f"lr={decimal32(self.lr)}",
            f"momentum={decimal32(self.momentum)}",
            f"optimizer={self.optimizer}",
            f"wd={decimal32(self.weight_decay)}",
            f"seed={self.job_seed(round, shard)}",
        ]

    def json_dict(self) -> dict[str, Any]:
        """The configuration as the Rust checkpoint writes it."""
        return self.model_dump(mode="json")


def decimal32(x: float) -> str:
    """The shortest decimal that reads back as the same float32, without an exponent (what
    Rust's ``Display`` of an ``f32`` prints: ``0.1``, ``0``, ``0.00001``)."""
    v = f32(x)
    if v == 0:
        return "0"
    s = repr(v)
    for p in range(17):
        s = f"{v:.{p}e}"
        if f32(float(s)) == v:
            break
    return format(Decimal(s).normalize(), "f")
