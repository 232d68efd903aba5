"""The round driver: :class:`Trainer` (blocking, over :class:`sietch.Client`) and
:class:`AsyncTrainer` (asyncio, over :class:`sietch.AsyncClient`), one codebase: a round is
one operation of the SDK's sans-I/O core (a generator of HTTP calls and pauses), which each
client drives, as every other operation of the SDK.

A round, as ``sietch_sdk::train``'s (docs/training.md, "The round driver"): the weights are
encoded (``SWT1``) and uploaded, the shards (``SDG1``) uploaded where the node lacks them, one
job of the training guest submitted per shard with the Rust driver's seeds and arguments, each
followed until it is ``paid`` or ``checked`` (taken) or ``failed``/``refused``; a shard is
submitted again, up to ``max_attempts`` a round, when its job failed, when its update was
dropped (its spot check found the provider wrong or did not decide; not ``SWT1`` of the
model's dimensions, not finite, no ``stats.json``) and when its job ran ``straggler_secs``
without an end (the first keeps running; whichever delivers first is taken), each time
avoiding the providers of the shard's failed, dropped and straggling attempts in the round
(the job's ``avoid`` list; anywhere when only they are there). The updates are
aggregated in shard order in float32, added to the weights, the result scored on the
held-out set, checkpointed when asked, reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import _core as core
from ..aio import AsyncClient
from ..client import Client
from ..errors import NoMatch, SietchError
from ..job import MAX_AVOID, BlobRef, Job, Limits, Verification, blob_hash
from ..models import JobRecord
from .checkpoint import Checkpoint
from .config import TrainConfig
from .digits import Digits, Sample, encode_sdg
from .errors import CheckpointError, ShardExhausted, TrainError
from .eval import Evaluation, evaluate
from .guest import train_module
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
from .weights import Weights, f32

WEIGHTS_INPUT = "weights.swt"
SHARD_INPUT = "shard.sdg"
UPDATE_OUTPUT = "update.swt"
STATS_OUTPUT = "stats.json"
POLL_SECONDS = 0.25
"""How often each job in flight is looked at."""
DECISION_PATIENCE = 8
"""Polls a sampled job's record may show no decision before it is taken as it stands."""

OnEvent = Callable[[TrainEvent], None]


def _quiet(_: TrainEvent) -> None:
    pass


def _is_provider(p: str) -> bool:
    """Whether ``p`` names a provider: not empty, not the zero address."""
    h = p.removeprefix("0x")
    return bool(h) and any(c != "0" for c in h)


@dataclass
class _Shard:
    launched: int = 0
    running: int = 0
    last_launch: float = 0.0
    last_reason: str = ""
    accepted: tuple[Weights, float, str] | None = None
    avoid: list[str] = field(default_factory=list)
    """Providers of attempts that failed, or whose update was dropped, and every provider
    an attempt was sent to (the node's ``sent_to``): what the next attempt avoids."""

    def note(self, provider: str | None) -> None:
        if provider is None or not _is_provider(provider) or provider in self.avoid:
            return
        if len(self.avoid) < MAX_AVOID:
            self.avoid.append(provider)


@dataclass
class _InFlight:
    shard: int
    submitted: float
    patience: int = DECISION_PATIENCE
    last_error: str = ""


@dataclass
class _Outcome:
    updates: list[Weights] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    paid: int = 0
    jobs: int = 0
    resubmits: int = 0
    dropped: int = 0
    failed: int = 0
    fuel: int = 0


def usable(
    update: bytes | None, stats: bytes | None, check: str | None, dims: list[int]
) -> tuple[Weights, float]:
    """The update and its ``loss_mean``, or ``ValueError`` saying why it is not taken."""
    if check not in (None, "Passed", "ProviderRight"):
        raise ValueError(f"its spot check did not pass ({check})")
    if update is None:
        raise ValueError("it wrote no update.swt")
    try:
        w = Weights.decode(update)
    except TrainError as e:
        raise ValueError(f"its update: {e}") from e
    if w.dims != dims:
        raise ValueError(f"its update has dimensions {w.dims}")
    if not w.is_finite():
        raise ValueError("its update is not finite")
    if stats is None:
        raise ValueError("it wrote no stats.json")
    try:
        s = json.loads(stats)
        for k in ("loss_first", "loss_last", "loss_mean"):
            if not isinstance(s[k], (int, float)) or isinstance(s[k], bool):
                raise ValueError(f"{k} is {s[k]!r}")
        for k in ("steps", "samples", "params"):
            if not isinstance(s[k], int):
                raise ValueError(f"{k} is {s[k]!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"its stats.json: {e}") from e
    return w, f32(float(s["loss_mean"]))


class _Run:
    """A run's state and its rounds as operations, without I/O."""

    def __init__(
        self,
        config: TrainConfig,
        data: Digits,
        module: bytes | BlobRef,
        weights: Weights | None = None,
        history: list[RoundReport] | None = None,
    ) -> None:
        config.check(len(data.samples))
        self.config = config
        self.weights = weights if weights is not None else Weights.init(config.dims, config.seed)
        if self.weights.dims != config.dims:
            raise TrainError(
                f"dimensions {self.weights.dims}, the configuration says {config.dims}"
            )
        split = data.split(config.seed, config.held_out, config.shards)
        self.held_out: list[Sample] = split.held_out
        self.shards = [encode_sdg(s) for s in split.shards]
        self.data_hash = data.hash
        self.module = module
        self.history: list[RoundReport] = list(history or [])
        self.checkpoint: Path | None = None

    def checkpoint_to(self, dir: str | os.PathLike[str]) -> None:
        d = Path(dir)
        if self.checkpoint != d and Checkpoint.exists(d):
            raise CheckpointError(
                f"checkpoint {d}: it holds a run already: resume it, or give another directory"
            )
        self.checkpoint = d

    # ----- one round, as an operation of the core ---------------------------------------

    def _publish(self, data: bytes) -> core.Op[str]:
        h = blob_hash(data)
        if not (yield from core.has_blob(h)):
            yield from core.upload(data)
        return h

    def _job(
        self, module: BlobRef, weights: str, shard: int, round: int, avoid: list[str]
    ) -> Job:
        c, l = self.config, self.config.limits
        return Job(
            module=module,
            args=c.job_args(round - 1, shard),
            inputs={WEIGHTS_INPUT: BlobRef(weights), SHARD_INPUT: BlobRef(blob_hash(self.shards[shard]))},
            limits=Limits(
                fuel=l.fuel,
                memory_bytes=l.memory_bytes,
                wall_time_ms=l.wall_time_ms,
                output_bytes=1 << 20,
            ),
            verification=Verification(sampling_ppm=l.sampling_ppm, reruns=l.reruns),
            price_cap=int(l.price_cap),
            deadline_secs=l.deadline_secs,
            avoid=avoid,
        )

    def _submit(self, job: Job) -> core.Op[str]:
        """Submits ``job``; when only the providers it avoids could run it (``no_match``,
        blocker ``avoid``), again without that list: a small market's provider may be asked
        again rather than the shard fail."""
        try:
            return (yield from core.submit(job))
        except NoMatch as e:
            if e.blocker != "avoid" or not job.avoid:
                raise
        return (yield from core.submit(job.model_copy(update={"avoid": []})))

    def round_op(self, on: OnEvent) -> core.Op[RoundReport]:
        number = len(self.history) + 1
        started = time.monotonic()
        on(RoundStarted(number, self.config.shards))
        module = self.module
        if isinstance(module, bytes):
            module = BlobRef((yield from self._publish(module)))
            self.module = module
        weights = yield from self._publish(self.weights.encode())
        for s in self.shards:
            yield from self._publish(s)
        out = yield from self._jobs(number, module, weights, on)
        update = Weights.aggregate(out.updates, self.config.aggregate)
        self.weights.apply(update)
        loss = 0.0
        for x in out.losses:
            loss = f32(loss + x)
        report = RoundReport(
            round=number,
            train_loss=f32(loss / max(len(out.losses), 1)),
            held_out=self.evaluate(),
            paid=out.paid,
            jobs=out.jobs,
            resubmits=out.resubmits,
            dropped=out.dropped,
            failed=out.failed,
            fuel=out.fuel,
            millis=int((time.monotonic() - started) * 1000),
            providers=out.providers,
        )
        self.history.append(report)
        if self.checkpoint is not None:
            Checkpoint(number, self.data_hash, self.config, self.weights, self.history).save(
                self.checkpoint
            )
        on(RoundDone(report))
        return report

    def _jobs(
        self, round: int, module: BlobRef, weights: str, on: OnEvent
    ) -> core.Op[_Outcome]:
        cfg = self.config
        straggler = max(cfg.straggler_secs, 1)
        shards = [_Shard() for _ in self.shards]
        flying: dict[str, _InFlight] = {}
        out = _Outcome()
        while True:
            now = time.monotonic()
            for k, s in enumerate(shards):
                if s.accepted is not None:
                    continue
                if not (s.launched == 0 or s.running == 0 or now - s.last_launch >= straggler):
                    continue
                if s.launched >= cfg.max_attempts:
                    if s.running == 0:
                        raise ShardExhausted(round, k, s.launched, s.last_reason)
                    continue
                reason = (
                    None
                    if s.launched == 0
                    else s.last_reason
                    if s.running == 0
                    else f"straggler: no update after {straggler} s"
                )
                s.launched += 1
                s.last_launch = now
                if reason is not None:
                    out.resubmits += 1
                avoid = list(s.avoid) if s.launched > 1 else []
                try:
                    id = yield from self._submit(self._job(module, weights, k, round, avoid))
                except SietchError as e:
                    on(Submitted(round, k, s.launched, reason, None, avoid))
                    self._ended(round, k, s, out, on, None, f"submitting: {e}", None)
                    continue
                s.running += 1
                flying[id] = _InFlight(k, now)
                on(Submitted(round, k, s.launched, reason, id, avoid))
            if all(s.accepted is not None for s in shards):
                break
            for id, f in list(flying.items()):
                try:
                    rec: JobRecord | None = yield from core.job(id, "buyer")
                except SietchError as e:
                    rec, f.last_error = None, str(e)
                s = shards[f.shard]
                if rec is not None:
                    for p in rec.sent_to:
                        s.note(p)
                    pending = rec.check.sampled and rec.check.decision is None and f.patience > 0
                    if pending:
                        f.patience -= 1
                    elif self._end(round, f.shard, s, out, on, id, rec):
                        del flying[id]
                        continue
                deadline = f.submitted + cfg.limits.deadline_secs + 30
                if time.monotonic() >= deadline:
                    del flying[id]
                    why = f"no end by its deadline {f.last_error}".strip()
                    self._ended(round, f.shard, s, out, on, id, why, None)
            yield core.Sleep(POLL_SECONDS)
        for s in shards:
            if s.accepted is not None:
                w, loss, provider = s.accepted
                out.updates.append(w)
                out.losses.append(loss)
                out.providers.append(provider)
        return out

    def _end(
        self, round: int, k: int, s: _Shard, out: _Outcome, on: OnEvent, id: str, rec: JobRecord
    ) -> bool:
        """Whether job ``id`` ended; if so, its update taken or dropped, or its failure."""
        decision = rec.check.decision
        if rec.state in ("paid", "checked") and rec.outputs is not None:
            o = rec.outputs
            out.fuel += o.fuel_used
            paid = int(rec.amount or 0) if rec.state == "paid" else 0
            try:
                w, loss = usable(o.file(UPDATE_OUTPUT), o.file(STATS_OUTPUT), decision, self.config.dims)
            except ValueError as e:
                self._ended(round, k, s, out, on, id, None, (rec, str(e)), paid)
                return True
            s.running -= 1
            out.jobs += 1
            out.paid += paid
            if s.accepted is None:
                on(ShardDone(round, k, id, rec.provider, loss, decision))
                s.accepted = (w, loss, rec.provider or "")
            return True
        if rec.state == "failed" and ("spot check failed" in rec.note or decision == "ProviderWrong"):
            why = f"its spot check found the provider wrong ({decision or 'ProviderWrong'})"
            self._ended(round, k, s, out, on, id, None, (rec, why))
            return True
        if rec.state in ("failed", "refused"):
            self._ended(round, k, s, out, on, id, f"{rec.state}: {rec.note}", None)
            return True
        return False

    def _ended(
        self,
        round: int,
        k: int,
        s: _Shard,
        out: _Outcome,
        on: OnEvent,
        id: str | None,
        failed: str | None,
        dropped: tuple[JobRecord, str] | None,
        paid: int = 0,
    ) -> None:
        """A job that gave no update the driver takes: counted, its shard due again."""
        s.running = max(s.running - (1 if id is not None else 0), 0)
        out.jobs += 1
        out.paid += paid
        if failed is not None:
            out.failed += 1
            s.last_reason = f"failed: {failed}"
            on(Failed(round, k, failed))
        elif dropped is not None:
            rec, why = dropped
            s.note(rec.provider)
            out.dropped += 1
            s.last_reason = f"update dropped: {why}"
            on(Dropped(round, k, id, rec.provider, why))

    # ----- reading the state ------------------------------------------------------------

    def evaluate(self) -> Evaluation:
        return evaluate(self.weights, self.held_out)

    @classmethod
    def resumed(
        cls, dir: str | os.PathLike[str], data: Digits, module: bytes | BlobRef
    ) -> _Run:
        c = Checkpoint.load(dir)
        if c.data != data.hash:
            raise CheckpointError(f"checkpoint {dir}: it trained on data {c.data}, not {data.hash}")
        run = cls(c.config, data, module, c.weights, c.history)
        run.checkpoint = Path(dir)
        return run


class _Common:
    """What both trainers read of their run."""

    _run: _Run

    @property
    def config(self) -> TrainConfig:
        return self._run.config

    @property
    def weights(self) -> Weights:
        """The current weights (after the rounds done)."""
        return self._run.weights

    @property
    def history(self) -> list[RoundReport]:
        return list(self._run.history)

    @property
    def rounds_done(self) -> int:
        return len(self._run.history)

    @property
    def held_out(self) -> list[Sample]:
        return self._run.held_out

    def set_rounds(self, rounds: int) -> None:
        """How many rounds :meth:`run` goes to (the only setting a resumed run changes)."""
        self._run.config = self._run.config.model_copy(update={"rounds": rounds})

    def evaluate(self) -> Evaluation:
        """The current weights on the held-out set (the driver's forward pass)."""
        return self._run.evaluate()


class Trainer(_Common):
    """Trains the digits model across the market's providers through ``client`` (blocking).

    ``module`` is the training guest: bytes, a path, a ``0x`` hash the node holds, or
    ``None`` for :func:`sietch.train.find_train_guest`. ``data`` defaults to the model
    cache's ``digits.csv.gz``.
    """

    def __init__(
        self,
        client: Client,
        config: TrainConfig | None = None,
        data: Digits | None = None,
        *,
        module: bytes | BlobRef | str | os.PathLike[str] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        _run: _Run | None = None,
    ) -> None:
        self.client = client
        self._run = _run or _Run(config or TrainConfig(), data or Digits.open(), train_module(module))
        if checkpoint is not None:
            self._run.checkpoint_to(checkpoint)

    @classmethod
    def resume(
        cls,
        client: Client,
        dir: str | os.PathLike[str],
        data: Digits | None = None,
        *,
        module: bytes | BlobRef | str | os.PathLike[str] | None = None,
    ) -> Trainer:
        """Goes on from the checkpoint in ``dir`` (written by this driver or the Rust one):
        its configuration, weights and reports; other data is refused."""
        return cls(client, _run=_Run.resumed(dir, data or Digits.open(), train_module(module)))

    def round(self, on: OnEvent | None = None) -> RoundReport:
        """One round; ``on`` hears each event."""
        return self.client._drive(self._run.round_op(on or _quiet))

    def rounds(self, on: OnEvent | None = None) -> Iterator[RoundReport]:
        """The rounds left to ``config.rounds``, one report at a time."""
        while self.rounds_done < self.config.rounds:
            yield self.round(on)

    def run(self, on: OnEvent | None = None) -> list[RoundReport]:
        """Every round left; their reports."""
        return list(self.rounds(on))


class AsyncTrainer(_Common):
    """:class:`Trainer` for asyncio, over :class:`sietch.AsyncClient`: the same rounds."""

    def __init__(
        self,
        client: AsyncClient,
        config: TrainConfig | None = None,
        data: Digits | None = None,
        *,
        module: bytes | BlobRef | str | os.PathLike[str] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        _run: _Run | None = None,
    ) -> None:
        self.client = client
        self._run = _run or _Run(config or TrainConfig(), data or Digits.open(), train_module(module))
        if checkpoint is not None:
            self._run.checkpoint_to(checkpoint)

    @classmethod
    def resume(
        cls,
        client: AsyncClient,
        dir: str | os.PathLike[str],
        data: Digits | None = None,
        *,
        module: bytes | BlobRef | str | os.PathLike[str] | None = None,
    ) -> AsyncTrainer:
        return cls(client, _run=_Run.resumed(dir, data or Digits.open(), train_module(module)))

    async def round(self, on: OnEvent | None = None) -> RoundReport:
        return await self.client._drive(self._run.round_op(on or _quiet))

    async def rounds(self, on: OnEvent | None = None) -> AsyncIterator[RoundReport]:
        while self.rounds_done < self.config.rounds:
            yield await self.round(on)

    async def run(self, on: OnEvent | None = None) -> list[RoundReport]:
        return [r async for r in self.rounds(on)]

