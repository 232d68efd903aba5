#!/usr/bin/env python3
"""Writes the training guest's data shards (.sdg, docs/training.md) from scikit-learn's
digits.csv.gz (1,797 rows: 64 pixel columns 0-16, then the label 0-9; scripts/digits.sh keeps
it in the model cache). Standard library only.

    digits.py [--csv PATH] --out DIR [--shards K] [--holdout N] [--seed S]

The rows, in file order, are permuted by Fisher-Yates from the top with the guest's PRNG
(splitmix64 seeded with S; j = below(i + 1) for i = n - 1 down to 1, below(m) being
((next >> 32) * m) >> 32). The first N rows of the permutation are DIR/holdout.sdg (none when
N is 0); the others are dealt in turn to K shards (shard k gets the k-th, (k + K)-th, ... of
them) as DIR/shard-k.sdg. The same arguments give the same bytes on every machine, and the same
split as the Rust SDK's (sietch_sdk::train).
"""

import argparse
import gzip
import os
import struct
import sys

MASK = (1 << 64) - 1


class SplitMix64:
    """The training guest's PRNG (train.h, rng_next)."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        """A uniform index below n: Lemire's multiply-shift on the top 32 bits."""
        return ((self.next() >> 32) * n) >> 32

    def shuffle(self, items):
        """Fisher-Yates from the top, in place, as the guest shuffles its shard."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


def default_csv():
    cache = os.environ.get("SIETCH_MODEL_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "sietch", "models"
    )
    return os.path.join(cache, "digits.csv.gz")


def read_csv(path):
    """[(pixels: bytes of 64, label)], checked."""
    opener = gzip.open if path.endswith(".gz") else open
    rows = []
    with opener(path, "rt") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = [int(v) for v in line.strip().split(",")]
            if len(fields) != 65 or not all(0 <= v <= 16 for v in fields[:64]):
                raise SystemExit(f"{path}:{line_no}: want 64 pixels 0-16 and a label")
            if not 0 <= fields[64] <= 9:
                raise SystemExit(f"{path}:{line_no}: label {fields[64]} is not 0-9")
            rows.append((bytes(fields[:64]), fields[64]))
    return rows


def sdg(rows, d=64):
    """The bytes of a shard: "SDG1", u32 n, u32 d, then each record's d pixels and label."""
    out = bytearray(b"SDG1" + struct.pack("<II", len(rows), d))
    for pixels, label in rows:
        out += pixels + bytes([label])
    return bytes(out)


def read_sdg(data):
    """[(pixels, label)] from a shard's bytes (the inverse of sdg)."""
    if data[:4] != b"SDG1":
        raise ValueError("not a data shard")
    n, d = struct.unpack_from("<II", data, 4)
    return [
        (data[12 + r * (d + 1) : 12 + r * (d + 1) + d], data[12 + r * (d + 1) + d])
        for r in range(n)
    ]


def split(rows, shards, holdout, seed):
    """(holdout rows, [rows of each shard]) as the module's docstring says."""
    if shards < 1 or holdout < 0 or holdout + shards > len(rows):
        raise SystemExit(f"cannot cut {len(rows)} rows into {shards} shards and {holdout} held out")
    order = list(range(len(rows)))
    SplitMix64(seed).shuffle(order)
    held, rest = order[:holdout], order[holdout:]
    return [rows[i] for i in held], [[rows[i] for i in rest[k::shards]] for k in range(shards)]


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--csv", default=default_csv(), help="digits.csv(.gz) (default: the cache's)")
    p.add_argument("--out", required=True, help="folder for shard-K.sdg and holdout.sdg")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--holdout", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    held, shards = split(read_csv(a.csv), a.shards, a.holdout, a.seed)
    os.makedirs(a.out, exist_ok=True)
    if held:
        with open(os.path.join(a.out, "holdout.sdg"), "wb") as f:
            f.write(sdg(held))
    for k, rows in enumerate(shards):
        with open(os.path.join(a.out, f"shard-{k}.sdg"), "wb") as f:
            f.write(sdg(rows))
    print(f"{len(shards)} shards of {min(map(len, shards))}-{max(map(len, shards))} rows, "
          f"{len(held)} held out, in {a.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
