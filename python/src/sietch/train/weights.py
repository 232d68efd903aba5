"""``SWT1`` weights, the first weights (the guest's ``mode=init``) and the aggregation of
updates, in float32 like ``sietch_sdk::train::weights``.

numpy is no dependency of the SDK: parameters live in ``array('f')``, whose every store rounds
a Python float (a double) to the nearest float32. A sum, difference, product or quotient of
two float32 values computed in double and rounded once to float32 is exactly the float32
operation (a double carries more than twice float32's 24 bits), so storing each step into an
``array('f')`` gives the Rust driver's f32 arithmetic bit for bit.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Sequence
from typing import Literal

from .digits import SplitMix64
from .errors import TrainError

MAX_LAYERS = 16
MAX_WIDTH = 4096
MAX_PARAMS = 1 << 22

Aggregate = Literal["mean", "median"]
"""How updates are combined: ``mean`` (summed in shard order, divided by K) or ``median``
(each coordinate's median; the mean of the two middle values for an even K)."""


def param_count(dims: Sequence[int]) -> int:
    if not 2 <= len(dims) <= MAX_LAYERS + 1:
        raise TrainError(
            f"{len(dims)} dimensions: a model has 2 to {MAX_LAYERS + 1} "
            "(inputs, hidden layers, classes)"
        )
    for d in dims:
        if not 1 <= d <= MAX_WIDTH:
            raise TrainError(f"a layer of {d} units (1 to {MAX_WIDTH})")
    n = sum((i + 1) * o for i, o in zip(dims, dims[1:]))
    if n > MAX_PARAMS:
        raise TrainError(f"{n} parameters, over {MAX_PARAMS}")
    return n


def f32(x: float) -> float:
    """``x`` rounded to float32."""
    return array("f", [x])[0]


class Weights:
    """A multilayer perceptron's parameters: per layer W (out × in, row-major), then b."""

    def __init__(self, dims: Sequence[int], params: array[float]) -> None:
        n = param_count(dims)
        if params.typecode != "f" or len(params) != n:
            raise TrainError(f"{len(params)} parameters for dimensions {list(dims)}: want {n}")
        self.dims = [int(d) for d in dims]
        self.params = params

    @classmethod
    def zeros(cls, dims: Sequence[int]) -> Weights:
        return cls(dims, array("f", bytes(4 * param_count(dims))))

    @classmethod
    def init(cls, dims: Sequence[int], seed: int) -> Weights:
        """Bit for bit the guest's ``mode=init``: W of a layer followed by ReLU uniform in
        ±sqrt(6 / in), the last layer's in ±sqrt(6 / (in + out)), biases zero; each weight
        ``(2u − 1) · limit`` with ``u = (next >> 11) · 2^-53`` in double, rounded to f32."""
        w = cls.zeros(dims)
        rng = SplitMix64(seed)
        layers = len(dims) - 1
        at = 0
        for l, (fan_in, out) in enumerate(zip(dims, dims[1:])):
            fan = float(fan_in) if l + 1 < layers else float(fan_in + out)
            limit = math.sqrt(6.0 / fan)
            for k in range(at, at + fan_in * out):
                u = (rng.next_u64() >> 11) * (1.0 / (1 << 53))
                w.params[k] = (2.0 * u - 1.0) * limit
            at += fan_in * out + out
        return w

    def layer(self, l: int) -> tuple[array[float], array[float]]:
        """Layer ``l``'s W and b (copies)."""
        at = 0
        for k, (i, o) in enumerate(zip(self.dims, self.dims[1:])):
            if k == l:
                return self.params[at : at + i * o], self.params[at + i * o : at + i * o + o]
            at += i * o + o
        raise IndexError(l)

    def encode(self) -> bytes:
        """``SWT1``, u32 layers, u32 dims, then the f32 parameters, all little-endian."""
        head = b"SWT1" + struct.pack(f"<{len(self.dims) + 1}I", len(self.dims) - 1, *self.dims)
        body = array("f", self.params)
        if sys.byteorder != "little":
            body.byteswap()
        return head + body.tobytes()

    @classmethod
    def decode(cls, data: bytes) -> Weights:
        if len(data) < 8:
            raise TrainError("weights: shorter than its header")
        if data[:4] != b"SWT1":
            raise TrainError("weights: no SWT1 magic")
        (layers,) = struct.unpack_from("<I", data, 4)
        if not 1 <= layers <= MAX_LAYERS:
            raise TrainError(f"weights: {layers} layers (1 to {MAX_LAYERS})")
        end = 8 + 4 * (layers + 1)
        if len(data) < end:
            raise TrainError("weights: shorter than its dimensions")
        dims = list(struct.unpack_from(f"<{layers + 1}I", data, 8))
        n = param_count(dims)
        if len(data) - end != 4 * n:
            raise TrainError(f"weights: {len(data) - end} bytes of parameters for {n} parameters")
        params = array("f")
        params.frombytes(data[end:])
        if sys.byteorder != "little":
            params.byteswap()
        return cls(dims, params)

    def is_finite(self) -> bool:
        return all(math.isfinite(p) for p in self.params)

    def copy(self) -> Weights:
        return Weights(self.dims, array("f", self.params))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Weights) and self.encode() == other.encode()

    def __repr__(self) -> str:
        return f"Weights(dims={self.dims}, params={len(self.params)})"

    def apply(self, update: Weights) -> None:
        """Adds ``update`` element by element, in f32."""
        self._same_shape(update)
        p, u = self.params, update.params
        for i in range(len(p)):
            p[i] = p[i] + u[i]

    def _same_shape(self, other: Weights) -> None:
        if self.dims != other.dims:
            raise TrainError(f"dimensions {other.dims}, expected {self.dims}")

    @staticmethod
    def aggregate(updates: Sequence[Weights], how: Aggregate = "mean") -> Weights:
        """The updates combined in the order given (shard order), in f32."""
        if not updates:
            raise TrainError("no updates to aggregate")
        first = updates[0]
        for u in updates:
            first._same_shape(u)
        out = Weights.zeros(first.dims)
        o = out.params
        k = len(updates)
        if how == "mean":
            for u in updates:
                p = u.params
                for i in range(len(o)):
                    o[i] = o[i] + p[i]
            for i in range(len(o)):
                o[i] = o[i] / k
        elif how == "median":
            mid = k // 2
            for i in range(len(o)):
                col = sorted(u.params[i] for u in updates)
                o[i] = f32(col[mid - 1] + col[mid]) / 2 if k % 2 == 0 else col[mid]
        else:
            raise TrainError(f"aggregate {how!r}: mean or median")
        return out
