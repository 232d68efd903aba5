"""What a run tells: a round's :class:`RoundReport` and the :data:`TrainEvent` s of a round,
with the Rust driver's fields (its ``TrainEvent`` serializes tagged by ``kind``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Union

from .eval import Evaluation


@dataclass(frozen=True)
class RoundReport:
    """One round: the mean training loss (the guest's ``loss_mean`` averaged over shards),
    the held-out score after it, what was paid (base units), the jobs that ended, the
    re-submissions, dropped updates and failed jobs, the fuel of delivered jobs, the wall
    time and each shard's provider."""

    round: int
    train_loss: float
    held_out: Evaluation
    paid: int
    jobs: int
    resubmits: int
    dropped: int
    failed: int
    fuel: int
    millis: int
    providers: list[str] = field(default_factory=list)

    def json_dict(self) -> dict[str, Any]:
        """As the Rust checkpoint writes it (``paid`` a decimal string)."""
        d = asdict(self)
        d["paid"] = str(self.paid)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RoundReport:
        h = d["held_out"]
        return cls(
            round=int(d["round"]),
            train_loss=float(d["train_loss"]),
            held_out=Evaluation(float(h["loss"]), float(h["accuracy"]), int(h["samples"])),
            paid=int(d["paid"]),
            jobs=int(d["jobs"]),
            resubmits=int(d["resubmits"]),
            dropped=int(d["dropped"]),
            failed=int(d["failed"]),
            fuel=int(d["fuel"]),
            millis=int(d["millis"]),
            providers=[str(p) for p in d.get("providers", [])],
        )


@dataclass(frozen=True)
class RoundStarted:
    round: int
    shards: int
    kind: str = "round_started"


@dataclass(frozen=True)
class Submitted:
    """A shard's job submitted; ``reason`` says why when it is a re-submission, ``avoid``
    the providers it must not go to (those of the shard's attempts in the round that failed,
    were dropped or straggle)."""

    round: int
    shard: int
    attempt: int
    reason: str | None
    job_id: str | None = None
    avoid: list[str] = field(default_factory=list)
    kind: str = "submitted"


@dataclass(frozen=True)
class ShardDone:
    """A shard's update taken."""

    round: int
    shard: int
    job_id: str | None
    provider: str | None
    loss: float
    check: str | None
    kind: str = "shard_done"


@dataclass(frozen=True)
class Failed:
    """A shard's job failed (it will be submitted again while attempts are left)."""

    round: int
    shard: int
    reason: str
    kind: str = "failed"


@dataclass(frozen=True)
class Dropped:
    """A delivered update not taken: its spot check did not pass, or it is unusable."""

    round: int
    shard: int
    job_id: str | None
    provider: str | None
    reason: str
    kind: str = "dropped"


@dataclass(frozen=True)
class RoundDone:
    report: RoundReport
    kind: str = "round_done"


TrainEvent = Union[RoundStarted, Submitted, ShardDone, Failed, Dropped, RoundDone]
"""Every event of a run; ``kind`` names it as the Rust driver's JSON does."""
