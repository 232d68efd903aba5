"""The training driver's parts without a node: the split and the ``SDG1`` shards byte for byte
against docs/training.md's pinned sha256s and ``sandbox/guests/train/digits.py``; the first
weights, the forward pass and one update against the training guest itself (``train.wasm``
run in wasmtime); ``SWT1``; aggregation in float32; the jobs' arguments; checkpoints."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from array import array
from pathlib import Path

import pytest
import wasmtime

from sietch.train import (
    Checkpoint,
    CheckpointError,
    Digits,
    Evaluation,
    NoTrainGuest,
    RoundReport,
    SplitMix64,
    TrainConfig,
    TrainError,
    Weights,
    decimal32,
    decode_sdg,
    encode_sdg,
    evaluate,
    find_train_guest,
    usable,
)

from .conftest import ROOT

DIGITS_PY = ROOT / "sandbox" / "guests" / "train" / "digits.py"


def digits_or_skip() -> Digits:
    from sietch.train import cached

    p = cached()
    if p is None:
        pytest.skip("the digits set is not in the model cache: run `bash scripts/digits.sh`")
    return Digits.open(p)


def guest_or_skip() -> bytes:
    try:
        return find_train_guest().read_bytes()
    except NoTrainGuest as e:
        pytest.skip(f"no training guest: {e}")


def run_guest(module: bytes, args: list[str], inputs: dict[str, bytes]) -> dict[str, bytes]:
    """The training guest in wasmtime with ``/input`` and ``/output`` as folders; its
    ``/output`` files (exit 0 asserted)."""
    engine = wasmtime.Engine()
    with tempfile.TemporaryDirectory() as tmp:
        i, o = Path(tmp, "input"), Path(tmp, "output")
        i.mkdir()
        o.mkdir()
        for name, data in inputs.items():
            (i / name).write_bytes(data)
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["train", *args]
        wasi.preopen_dir(str(i), "/input")
        wasi.preopen_dir(str(o), "/output")
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        inst = linker.instantiate(store, wasmtime.Module(engine, module))
        start = inst.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        try:
            start(store)
        except wasmtime.ExitTrap as e:
            assert e.code == 0, f"the guest exited {e.code}"
        return {p.name: p.read_bytes() for p in o.iterdir()}


# ----- the split and the shards ---------------------------------------------------------


def test_splitmix64_is_the_published_one() -> None:
    # The first outputs of splitmix64 from 0 (Vigna's reference), as the Rust test pins them.
    g = SplitMix64(0)
    assert [g.next_u64() for _ in range(2)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]


def test_the_split_matches_the_pinned_sha256s() -> None:
    d = digits_or_skip()
    assert len(d.samples) == 1797
    s = d.split(7, 297, 3)
    assert len(s.held_out) == 297 and [len(x) for x in s.shards] == [500, 500, 500]
    assert (
        hashlib.sha256(encode_sdg(s.shards[0])).hexdigest()
        == "b58a2b4515b69aa4cdb785394e9bbf565cd825a95f24cd6100b2a025874383af"
    )
    assert (
        hashlib.sha256(encode_sdg(s.held_out)).hexdigest()
        == "62c56fc92b5d3cbf7d45df505b6eca250b7f5cb05af09fe18b9fb5c1ac9bdc29"
    )


def test_the_split_equals_digits_py(tmp_path: Path) -> None:
    d = digits_or_skip()
    for seed, shards, holdout in [(1, 4, 100), (123456789012345, 5, 0)]:
        out = tmp_path / f"s{seed}"
        subprocess.run(
            [sys.executable, str(DIGITS_PY), "--out", str(out), "--shards", str(shards),
             "--holdout", str(holdout), "--seed", str(seed)],
            check=True, capture_output=True,
        )  # fmt: skip
        s = d.split(seed, holdout, shards)
        for k, shard in enumerate(s.shards):
            assert (out / f"shard-{k}.sdg").read_bytes() == encode_sdg(shard), (seed, k)
        if holdout:
            assert (out / "holdout.sdg").read_bytes() == encode_sdg(s.held_out)
        assert decode_sdg(encode_sdg(s.shards[0])) == s.shards[0]


def test_csv_is_read_plain_or_gzipped_and_bad_rows_refused() -> None:
    import gzip

    rows = "".join(
        ",".join(f"{(i + j) % 17}.0" for j in range(64)) + f",{i % 10}\n" for i in range(30)
    )
    plain = Digits.from_bytes(rows.encode())
    assert len(plain.samples) == 30 and plain.samples[3].label == 3
    assert plain.samples[3].pixels[2] == 5
    gz = Digits.from_bytes(gzip.compress(rows.encode()))
    assert gz.samples == plain.samples and gz.hash != plain.hash
    for bad, says in [
        ("1,2,3\n", "3 values"),
        ("0," * 64 + "17\n", "whole number"),
        ("0," * 64 + "1.5\n", "whole number"),
        ("0," * 64 + "x\n", "not a number"),
        ("", "no samples"),
    ]:
        with pytest.raises(TrainError, match=says):
            Digits.from_bytes(bad.encode())
    with pytest.raises(TrainError):
        Digits.from_bytes(b"\x1f\x8b\x00\x01\x02")
    with pytest.raises(TrainError, match="scripts/digits.sh"):
        Digits.open(ROOT / "no-such-dir" / "digits.csv.gz")
    # 103 samples into 13 held out and 4 shards: dealt in turn, nothing lost.
    many = Digits.from_bytes(
        "".join(",".join(str((i * 7 + j) % 17) for j in range(64)) + f",{i % 10}\n"
                for i in range(103)).encode()
    )  # fmt: skip
    s = many.split(42, 13, 4)
    assert [len(x) for x in s.shards] == [23, 23, 22, 22]
    assert s != many.split(43, 13, 4)
    every = sorted((x.pixels, x.label) for x in s.held_out + [y for z in s.shards for y in z])
    assert every == sorted((x.pixels, x.label) for x in many.samples)
    with pytest.raises(TrainError):
        many.split(1, 100, 4)
    with pytest.raises(TrainError):
        decode_sdg(encode_sdg(s.held_out)[:-1])
    with pytest.raises(TrainError):
        decode_sdg(b"SDG2" + bytes(8))


# ----- weights, against the guest ------------------------------------------------------


def test_first_weights_are_the_guests_mode_init() -> None:
    module = guest_or_skip()
    for dims, seed in [([64, 32, 10], 1), ([64, 24, 16, 10], 18446744073709551615)]:
        out = run_guest(
            module, ["mode=init", f"seed={seed}", "dims=" + ",".join(map(str, dims))], {}
        )
        assert out["weights.swt"] == Weights.init(dims, seed).encode(), dims


def test_swt1_round_trips_and_bad_files_are_refused() -> None:
    w = Weights.init([64, 32, 10], 1)
    data = w.encode()
    assert data[:8] == b"SWT1" + struct.pack("<I", 2)
    assert len(data) == 8 + 12 + 4 * (64 * 32 + 32 + 32 * 10 + 10)
    assert Weights.decode(data) == w
    for bad in [data[:-4], b"SWT2", b"SWT1" + struct.pack("<III", 1, 2**32 - 1, 2**32 - 1)]:
        with pytest.raises(TrainError):
            Weights.decode(bad)
    with pytest.raises(TrainError):
        Weights.zeros([64])


def f32s(*xs: float) -> list[float]:
    """Each value rounded to float32 through struct (not array), for an independent check."""
    return [struct.unpack("<f", struct.pack("<f", x))[0] for x in xs]


def test_updates_aggregate_in_shard_order_in_float32() -> None:
    def mk(*v: float) -> Weights:
        return Weights([1, 2], array("f", v))

    ups = [mk(1.0, 2.0, 3.0, 0.1), mk(3.0, 2.0, 1.0, 0.2), mk(1000.0, 2.0, -5.0, 0.3)]
    mean = Weights.aggregate(ups, "mean")
    a, b, c = f32s(0.1, 0.2, 0.3)
    (ab,) = f32s(a + b)
    (abc,) = f32s(ab + c)
    assert list(mean.params) == f32s(1004.0 / 3.0, 2.0, -1.0 / 3.0, abc / 3.0)
    assert list(Weights.aggregate(ups, "median").params) == f32s(3.0, 2.0, 1.0, 0.2)
    even = Weights.aggregate(ups[:2], "median")
    assert list(even.params) == f32s(2.0, 2.0, 2.0, f32s(a + b)[0] / 2)
    w = mk(1.0, 1.0, 1.0, 1.0)
    w.apply(mean)
    assert w.params[1] == 3.0
    with pytest.raises(TrainError):
        Weights.aggregate([], "mean")
    with pytest.raises(TrainError):
        Weights.aggregate([ups[0], Weights.zeros([2, 2])], "mean")


def test_a_guest_update_and_the_forward_pass_agree_with_the_guest() -> None:
    d = digits_or_skip()
    module = guest_or_skip()
    s = d.split(7, 297, 3)
    cfg = TrainConfig(seed=7)
    w = Weights.init(cfg.dims, cfg.seed)
    args = cfg.job_args(0, 0)
    out = run_guest(module, args, {"weights.swt": w.encode(), "shard.sdg": encode_sdg(s.shards[0])})
    update, loss = usable(out["update.swt"], out["stats.json"], None, cfg.dims)
    assert loss == f32s(json.loads(out["stats.json"])["loss_mean"])[0]
    before = evaluate(w, s.held_out)
    w.apply(update)
    after = evaluate(w, s.held_out)
    assert after.loss < before.loss, (before, after)
    held = encode_sdg(s.held_out)
    for weights in [Weights.init(cfg.dims, cfg.seed), w]:
        g = json.loads(run_guest(module, ["mode=eval"], {"weights.swt": weights.encode(), "shard.sdg": held})["eval.json"])
        mine = evaluate(weights, s.held_out)
        assert mine.samples == g["samples"] == 297
        assert mine.accuracy == pytest.approx(g["accuracy"], abs=1e-6)
        assert mine.loss == pytest.approx(g["loss"], rel=1e-5)


def test_unusable_updates_are_refused_with_a_reason() -> None:
    dims = [64, 32, 10]
    good = Weights.zeros(dims).encode()
    stats = b'{"loss_first":2.3,"loss_last":1.0,"loss_mean":1.5,"steps":20,"samples":500,"params":2410}\n'
    assert usable(good, stats, "Passed", dims)[1] == pytest.approx(1.5)
    for update, st, check, says in [
        (good, stats, "ProviderWrong", "did not pass"),
        (good, stats, "Undecided { .. }", "did not pass"),
        (None, stats, None, "no update.swt"),
        (Weights.zeros([64, 10]).encode(), stats, None, "dimensions"),
        (good[:-4] + struct.pack("<f", float("nan")), stats, None, "not finite"),
        (good, None, None, "no stats.json"),
        (good, stats.replace(b"1.5", b"null"), None, "loss_mean"),
    ]:
        with pytest.raises(ValueError, match=says):
            usable(update, st, check, dims)


# ----- the jobs' arguments and the configuration ---------------------------------------


def test_job_arguments_are_the_rust_drivers_strings() -> None:
    cfg = TrainConfig(lr=0.05, momentum=0.9, weight_decay=0.0001, optimizer="adamw")
    args = cfg.job_args(2, 1)
    assert args[:7] == [
        "mode=train", "steps=20", "batch=32", "lr=0.05", "momentum=0.9", "optimizer=adamw",
        "wd=0.0001",
    ]  # fmt: skip
    seed = int(args[7].removeprefix("seed="))
    assert seed == cfg.job_seed(2, 1) != cfg.job_seed(2, 2) != cfg.job_seed(1, 1)
    assert 0 <= seed < 1 << 64
    assert [decimal32(x) for x in (0.1, 0.0, 1e-5, 100.0, 1 / 3)] == [
        "0.1", "0", "0.00001", "100", "0.33333334",
    ]  # fmt: skip
    for bad in [TrainConfig(shards=0), TrainConfig(dims=[64, 9]), TrainConfig(lr=0),
                TrainConfig(held_out=1797), TrainConfig(max_attempts=0)]:  # fmt: skip
        with pytest.raises(TrainError):
            bad.check(1797)
    TrainConfig().check(1797)


# ----- checkpoints ---------------------------------------------------------------------


def report(r: int) -> RoundReport:
    return RoundReport(r, 0.5, Evaluation(0.25, 0.875, 297), 10**20, 3, 1, 0, 1, 123, 456, ["0xab"])


def test_checkpoints_round_trip_and_refuse_tampering(tmp_path: Path) -> None:
    cfg = TrainConfig(rounds=4, shards=2)
    w = Weights.init(cfg.dims, 3)
    c = Checkpoint(2, "0x" + "11" * 32, cfg, w, [report(1), report(2)])
    c.save(tmp_path)
    c.round, c.history = 3, [report(1), report(2), report(3)]
    c.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint.json", "history.json", "weights-0003.swt"]
    back = Checkpoint.load(tmp_path)
    assert back.round == 3 and back.config == cfg and back.weights == w
    assert back.history == c.history and back.history[0].paid == 10**20
    disk = json.loads((tmp_path / "checkpoint.json").read_text())
    assert disk["version"] == 1 and disk["weights_file"] == "weights-0003.swt"
    assert disk["history"][0]["paid"] == "100000000000000000000"
    assert disk["config"]["limits"]["price_cap"] == str(10**18)
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path, bad)
    (bad / "weights-0003.swt").write_bytes(Weights.init(cfg.dims, 4).encode())
    with pytest.raises(CheckpointError, match="hash"):
        Checkpoint.load(bad)
    with pytest.raises(CheckpointError):
        Checkpoint.load(tmp_path / "none")



def test_a_job_ends_as_its_record_says() -> None:
    """The driver's reading of a job record (as the node's API sends it): paid with a usable
    update is taken, a check that did not pass or a spot check that failed drops it, a
    failure is a failure, a running job has not ended."""
    import base64

    from sietch.models import JobRecord
    from sietch.train import Dropped, Failed, ShardDone
    from sietch.train.driver import _Outcome, _Run, _Shard

    rows = "".join(",".join(str((i + j) % 17) for j in range(64)) + f",{i % 10}\n" for i in range(40))
    run = _Run(TrainConfig(held_out=10, shards=2), Digits.from_bytes(rows.encode()), b"\0asm")
    update = Weights.zeros(run.config.dims).encode()
    stats = b'{"loss_first":2.3,"loss_last":1.0,"loss_mean":1.5,"steps":20,"samples":15,"params":2410}'

    def rec(state: str, decision: str | None = None, note: str = "", outputs: bool = True) -> JobRecord:
        files = {"update.swt": base64.b64encode(update).decode(), "stats.json": base64.b64encode(stats).decode()}
        return JobRecord.model_validate({
            "job_id": "0x01", "state": state, "provider": "0xp", "amount": "7", "note": note,
            "check": {"sampled": decision is not None, "decision": decision},
            "outputs": {"outcome": "exited 0", "exit_code": 0, "files": files, "output_hash": "0x",
                        "fuel_used": 5, "amount": "7"} if outputs else None,
        })  # fmt: skip

    cases = [
        (rec("paid", "Passed"), ShardDone),
        (rec("paid"), ShardDone),
        (rec("paid", "Undecided { .. }"), Dropped),
        (rec("failed", "ProviderWrong", "spot check failed"), Dropped),
        (rec("failed", None, "no provider", outputs=False), Failed),
        (rec("refused", None, "over the cap", outputs=False), Failed),
    ]
    for r, want in cases:
        events: list[object] = []
        s, out = _Shard(launched=1, running=1), _Outcome()
        assert run._end(1, 0, s, out, events.append, "0x01", r) is True
        assert [type(e) for e in events] == [want], (r.state, r.check, events)
        assert s.running == 0 and out.jobs == 1
        assert (s.accepted is not None) == (want is ShardDone)
        assert out.paid == (7 if r.state == "paid" else 0)
        # The provider of a dropped update is avoided by the shard's next attempt.
        assert s.avoid == (["0xp"] if want is Dropped else []), (r.state, s.avoid)
    s, out = _Shard(launched=1, running=1), _Outcome()
    assert run._end(1, 0, s, out, lambda e: None, "0x01", rec("running", outputs=False)) is False
    assert s.running == 1 and out.jobs == 0
