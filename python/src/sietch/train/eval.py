"""The driver's forward pass over the held-out set: its report of loss and accuracy.

The same order of operations as ``sietch_sdk::train::eval`` (pixels / 16, each sum in
ascending index, ReLU on every layer but the last, softmax cross-entropy), but in Python's
double precision: the accuracy agrees with the Rust driver's and the guest's ``mode=eval``
(short of a logit tie within float32 rounding), the loss to a few units in the last float32
places. The guest's ``mode=eval`` is the exact, checkable score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .digits import MAX_PIXEL, Sample
from .weights import Weights, f32


@dataclass(frozen=True)
class Evaluation:
    """Mean cross-entropy, the share right (highest logit, the first on a tie), records."""

    loss: float
    accuracy: float
    samples: int


def logits(w: Weights, pixels: bytes) -> list[float]:
    x = [p / MAX_PIXEL for p in pixels]
    layers = len(w.dims) - 1
    for l in range(layers):
        wl, bl = w.layer(l)
        fan_in = len(x)
        z = []
        for o in range(len(bl)):
            row = wl[o * fan_in : (o + 1) * fan_in]
            s = sum(a * v for a, v in zip(row, x)) + bl[o]
            z.append(s if l + 1 == layers or s > 0 else 0.0)
        x = z
    return x


def evaluate(w: Weights, samples: Sequence[Sample]) -> Evaluation:
    loss = 0.0
    right = 0
    for s in samples:
        z = logits(w, s.pixels)
        m = max(z)
        total = sum(math.exp(v - m) for v in z)
        loss += m + math.log(total) - z[s.label]
        guess = max(range(len(z)), key=lambda i: (z[i], -i))
        right += guess == s.label
    n = max(len(samples), 1)
    return Evaluation(f32(loss / n), f32(right / n), len(samples))
