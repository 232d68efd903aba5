"""Data-parallel training across the market's providers (docs/training.md): the digits set
split into shards, one verified job of the training guest per shard a round, the updates
aggregated in shard order, stragglers and failed or dropped shards re-submitted, checkpoints,
a report per round. The same split, formats, seeds, arithmetic and checkpoints as the Rust
SDK's ``sietch_sdk::train``, byte for byte.

Example::

    from sietch import Client
    from sietch.train import TrainConfig, Trainer

    with Client.from_data_dir(data_dir) as node:
        t = Trainer(node, TrainConfig(rounds=5), checkpoint="run/")
        for r in t.rounds(on=print):
            print(r.round, r.held_out.loss, r.held_out.accuracy, r.paid)
"""

from .checkpoint import Checkpoint
from .config import JobLimits, TrainConfig, decimal32
from .digits import Digits, Sample, Split, SplitMix64, cached, decode_sdg, default_path, encode_sdg
from .driver import AsyncTrainer, Trainer, usable
from .errors import CheckpointError, ShardExhausted, TrainError
from .eval import Evaluation, evaluate, logits
from .guest import NoTrainGuest, find_train_guest, train_module
from .report import (
    Dropped,
    Failed,
    RoundDone,
    RoundReport,
    RoundStarted,
    ShardDone,
    Submitted,
    TrainEvent,
)
from .weights import Aggregate, Weights, f32

__all__ = [
    "Aggregate",
    "AsyncTrainer",
    "Checkpoint",
    "CheckpointError",
    "Digits",
    "Dropped",
    "Evaluation",
    "Failed",
    "JobLimits",
    "NoTrainGuest",
    "RoundDone",
    "RoundReport",
    "RoundStarted",
    "Sample",
    "ShardDone",
    "ShardExhausted",
    "Split",
    "SplitMix64",
    "Submitted",
    "TrainConfig",
    "TrainError",
    "TrainEvent",
    "Trainer",
    "Weights",
    "cached",
    "decimal32",
    "decode_sdg",
    "default_path",
    "encode_sdg",
    "evaluate",
    "f32",
    "find_train_guest",
    "logits",
    "train_module",
    "usable",
]
