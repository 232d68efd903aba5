"""The training driver's typed errors."""

from __future__ import annotations

from ..errors import SietchError


class TrainError(SietchError):
    """Bad data, weights, configuration or checkpoint, or a round that cannot finish."""


class ShardExhausted(TrainError):
    """A shard used up its attempts in a round without an update the driver could take."""

    def __init__(self, round: int, shard: int, attempts: int, last: str) -> None:
        super().__init__(
            f"round {round}: shard {shard} has no usable update after {attempts} attempts "
            f"(last: {last})"
        )
        self.round = round
        self.shard = shard
        self.attempts = attempts
        self.last = last


class CheckpointError(TrainError):
    """A checkpoint directory that cannot be written, read or resumed."""
