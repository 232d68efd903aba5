"""The Python round driver against a real market (the session's ``sietch devnet``, three
providers): the digits model trained for three rounds across the providers (two blocking,
checkpointed; the third resumed from the checkpoint by the asyncio driver), the held-out loss
falling; and the Rust driver (``sietch train digits --local``) and this one resuming each
other's checkpoints, on the same weights bit for bit."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from sietch import AsyncClient, Client
from sietch.train import (
    AsyncTrainer,
    Checkpoint,
    Digits,
    Failed,
    NoTrainGuest,
    RoundReport,
    ShardDone,
    ShardExhausted,
    Submitted,
    TrainConfig,
    Trainer,
    TrainEvent,
    cached,
    find_train_guest,
)

from .conftest import BIN, Devnet


def inputs_or_skip() -> tuple[Digits, bytes]:
    p = cached()
    if p is None:
        pytest.skip("the digits set is not in the model cache: run `bash scripts/digits.sh`")
    try:
        module = find_train_guest().read_bytes()
    except NoTrainGuest as e:
        pytest.skip(f"no training guest: {e}")
    return Digits.open(p), module


def config(rounds: int) -> TrainConfig:
    c = TrainConfig(rounds=rounds, shards=3, seed=5)
    c.limits.deadline_secs = 60
    return c


@pytest.mark.timeout(180)
def test_three_rounds_across_the_devnets_providers(devnet: Devnet, tmp_path: Path) -> None:
    data, module = inputs_or_skip()
    events: list[TrainEvent] = []
    ckpt = tmp_path / "run"
    with Client.from_data_dir(devnet.data_dir, url=devnet.url) as node:
        t = Trainer(node, config(2), data, module=module, checkpoint=ckpt)
        first = t.evaluate()
        assert first.samples == 297
        reports = list(t.rounds(on=events.append))
    assert [r.round for r in reports] == [1, 2]
    kinds = [e.kind for e in events]
    assert kinds[0] == "round_started" and kinds[-1] == "round_done"
    assert kinds.count("submitted") >= 6 and kinds.count("shard_done") == 6, kinds
    for r in reports:
        assert r.jobs >= 3 and len(r.providers) == 3 and r.fuel > 0, r
        assert r.train_loss > 0
    assert Checkpoint.load(ckpt).round == 2
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "checkpoint.json", "history.json", "weights-0002.swt",
    ]  # fmt: skip

    async def third() -> tuple[RoundReport, int]:
        async with AsyncClient.from_data_dir(devnet.data_dir, url=devnet.url) as node:
            t = AsyncTrainer.resume(node, ckpt, data, module=module)
            assert t.rounds_done == 2 and t.weights == Checkpoint.load(ckpt).weights
            t.set_rounds(3)
            done = [r async for r in t.rounds()]
            return done[0], len(done)

    last, n = asyncio.run(third())
    assert n == 1 and last.round == 3
    losses = [first.loss] + [r.held_out.loss for r in reports] + [last.held_out.loss]
    print("held-out loss by round:", losses, "accuracy:", last.held_out.accuracy)
    assert losses[1] < losses[0] and losses[3] < losses[1], losses
    assert last.held_out.accuracy > first.accuracy
    assert Checkpoint.load(ckpt).round == 3


def rust_train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "train", "digits", "--local", "--seed", "5", "--shards", "3", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.timeout(180)
def test_either_driver_resumes_the_others_checkpoint(devnet: Devnet, tmp_path: Path) -> None:
    data, module = inputs_or_skip()
    probe = subprocess.run([str(BIN), "train", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{BIN} has no `train` command (an older build): rebuild sietch-cli")
    rust = tmp_path / "rust"
    done = rust_train("--rounds", "1", "--checkpoint", str(rust))
    assert done.returncode == 0, done.stderr
    both = tmp_path / "python"
    shutil.copytree(rust, both)
    # Rust goes on alone to round 2; Python goes on from Rust's round 1 through the market.
    done = rust_train("--rounds", "2", "--checkpoint", str(rust), "--resume")
    assert done.returncode == 0, done.stderr
    with Client.from_data_dir(devnet.data_dir, url=devnet.url) as node:
        t = Trainer.resume(node, both, data, module=module)
        assert t.rounds_done == 1
        t.set_rounds(2)
        t.run()
    assert (both / "weights-0002.swt").read_bytes() == (rust / "weights-0002.swt").read_bytes()
    # And Rust takes Python's checkpoint up.
    done = rust_train("--rounds", "3", "--checkpoint", str(both), "--resume")
    assert done.returncode == 0, done.stderr
    back = Checkpoint.load(both)
    assert back.round == 3 and [r.round for r in back.history] == [1, 2, 3]


@pytest.mark.timeout(120)
def test_a_shard_nobody_takes_is_resubmitted_then_given_up(devnet: Devnet, tmp_path: Path) -> None:
    """Every provider costs more than a cap of one base unit: each attempt fails (no offer
    matches), the shard is submitted again with the failure as its reason, and after
    ``max_attempts`` the round ends in :class:`ShardExhausted`, no checkpoint written."""
    data, module = inputs_or_skip()
    c = config(1)
    c.shards, c.max_attempts = 1, 2
    c.limits.price_cap = "1"
    events: list[TrainEvent] = []
    with Client.from_data_dir(devnet.data_dir, url=devnet.url) as node:
        t = Trainer(node, c, data, module=module, checkpoint=tmp_path / "run")
        before = t.weights.encode()
        with pytest.raises(ShardExhausted) as e:
            t.round(on=events.append)
    assert e.value.shard == 0 and e.value.attempts == 2 and "no offer" in e.value.last
    subs = [x for x in events if isinstance(x, Submitted)]
    assert [(s.attempt, s.reason is None) for s in subs] == [(1, True), (2, False)]
    assert subs[1].reason is not None and subs[1].reason.startswith("failed:")
    assert sum(isinstance(x, Failed) for x in events) == 2
    assert t.rounds_done == 0 and t.weights.encode() == before
    assert not Checkpoint.exists(tmp_path / "run")


@pytest.mark.timeout(120)
def test_stragglers_are_resubmitted_and_the_first_update_taken(devnet: Devnet) -> None:
    """A straggler deadline of one second (the least there is) and every job spot-checked,
    which makes a market job here take about that long: a shard whose update came more than
    two seconds (the deadline and a poll's slack) after its first submission must have been
    submitted again as a straggler, and only as one; whichever delivers first is taken, and
    the round ends on the very weights of ``sietch train digits --local`` (every attempt at a
    shard computes the same update)."""
    data, module = inputs_or_skip()
    c = config(1)
    c.straggler_secs, c.max_attempts = 1, 3
    c.limits.sampling_ppm = 1_000_000
    events: list[tuple[float, TrainEvent]] = []
    with Client.from_data_dir(devnet.data_dir, url=devnet.url) as node:
        t = Trainer(node, c, data, module=module)
        r = t.round(on=lambda e: events.append((time.monotonic(), e)))
        print("round 1:", r.millis, "ms,", r.jobs, "jobs ended,", r.resubmits, "re-submitted")
        again = [e for _, e in events if isinstance(e, Submitted) and e.reason is not None]
        assert r.resubmits == len(again), events
        assert all(e.reason is not None and e.reason.startswith("straggler") for e in again)
        # A straggler's shard avoids the providers its earlier attempts went to (the node's
        # `sent_to`), and its new job went to none of them; first attempts avoid nobody.
        firsts = [e for _, e in events if isinstance(e, Submitted) and e.reason is None]
        assert all(e.avoid == [] for e in firsts), firsts
        for e in again:
            assert e.avoid, e
            assert e.job_id is not None
            # The provider the shard's first job was sent to (first: the node may send a
            # job on after a failure, later than the re-submission).
            went = {p for s in firsts if s.shard == e.shard and s.job_id
                    for p in node.job(s.job_id).sent_to[:1]}  # fmt: skip
            assert went <= set(e.avoid), (went, e)
            sent = node.job(e.job_id).sent_to
            assert sent and not set(sent) & set(e.avoid), (sent, e)
    for k in range(3):
        first = min(at for at, e in events if isinstance(e, Submitted) and e.shard == k)
        done = [at for at, e in events if isinstance(e, ShardDone) and e.shard == k]
        assert len(done) == 1, events
        if done[0] - first > 2.0:
            assert any(e.shard == k for e in again), (k, done[0] - first, events)
    probe = subprocess.run([str(BIN), "train", "--help"], capture_output=True, text=True)
    if probe.returncode == 0:
        with tempfile.TemporaryDirectory() as tmp:
            done_ = rust_train("--rounds", "1", "--checkpoint", tmp)
            assert done_.returncode == 0, done_.stderr
            assert t.weights.encode() == (Path(tmp) / "weights-0001.swt").read_bytes()
