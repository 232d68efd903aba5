"""The job a buyer builds: a WebAssembly module (a WASI preview 1 command), its arguments,
environment, stdin and ``/input`` files, its limits, what the provider must have, how it is
spot-checked, and the most it may cost.

The defaults are the node's: 10^9 fuel, 64 MiB of memory, 60 s, 1 MiB of output, one CPU
core, 10% sampling with one re-run and exact comparison, a price cap of 0.1 token, 600 s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import blake3
from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from .errors import BadCheck, BadId


def blob_hash(data: bytes) -> str:
    """A blob's name: ``0x`` and the blake3 hash of its bytes, as the node computes it."""
    return "0x" + blake3.blake3(data).hexdigest()

_HEX_ID = re.compile(r"^(0x)?[0-9a-fA-F]{1,64}$")
_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
MAX_AVOID = 16
"""Most providers one :class:`Job` may avoid (the node's bound)."""
MAX_RESCORE_MARGIN = 1000.0
"""The largest rescore margin, in logits, a job may ask for (the node's bound: what the
inference guest takes)."""
DEFAULT_RESCORE_MARGIN = 0.1
"""The rescore margin used when none is given, in logits: what docs/ai.md measured, and the
CLI's ``sietch generate --check rescore``."""
MODEL_INPUT = "model.gguf"
"""The name the inference guest reads its model from, in ``/input``."""
PROMPTS_INPUT = "prompts.jsonl"
"""The name it reads its prompts from, in ``/input``: one JSON object per line."""


def check_margin(margin: float) -> float:
    """``margin`` if the node takes it as a rescore margin (a number, finite, above 0 and at
    most :data:`MAX_RESCORE_MARGIN`), else :class:`sietch.BadCheck`."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)):
        raise BadCheck(f"a rescore margin is a number of logits, not {margin!r:.60}")
    if not (math.isfinite(margin) and 0 < margin <= MAX_RESCORE_MARGIN):
        raise BadCheck(
            f"rescore margin {margin!r}: a rescore margin is above 0 and at most "
            f"{MAX_RESCORE_MARGIN:g} logits"
        )
    return float(margin)


def check_id(id: str) -> str:
    """``id`` if it is ``0x`` and hex digits (a job id or blob hash), else :class:`BadId`:
    it goes into a URL path, where nothing else may."""
    if not isinstance(id, str) or not _HEX_ID.match(id):
        raise BadId(f"{id!r} is not a job id or hash (0x and hex digits)")
    return id


@dataclass(frozen=True)
class BlobRef:
    """A blob the node already holds, by its ``0x`` blake3 hash (as
    :meth:`sietch.Client.upload` returned it): a job naming it uploads nothing. A provider
    that holds the blob too runs the job without fetching it (a model moves once)."""

    hash: str

    def __post_init__(self) -> None:
        check_id(self.hash)


class Limits(BaseModel):
    """What a job may use."""

    model_config = ConfigDict(extra="forbid")

    fuel: int = Field(default=1_000_000_000, ge=0)
    """Fuel: the billing unit (about one WebAssembly instruction)."""
    memory_bytes: int = Field(default=64 << 20, ge=0)
    """Linear memory, bytes."""
    wall_time_ms: int = Field(default=60_000, ge=0)
    """Wall-clock time, milliseconds."""
    output_bytes: int = Field(default=1 << 20, ge=0)
    """stdout and the ``/output`` files, bytes (each)."""


class GpuNeeds(BaseModel):
    """GPUs the provider must have."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=1, ge=0, le=255)
    models: list[str] = Field(default_factory=list)
    """Acceptable models (substring, case-insensitive); empty: any."""
    min_memory_bytes: int = Field(default=0, ge=0)
    """Memory per GPU."""
    min_compute_capability: str = "0.0"
    """Lowest compute capability, ``"major.minor"``."""


class FloatOutput(BaseModel):
    """An ``/output`` file of floats compared within tolerance."""

    model_config = ConfigDict(extra="forbid")

    path: str
    kind: Literal["f32", "f64"]


class Verification(BaseModel):
    """How a job is spot-checked: the share sampled, the re-runs of a sampled job, and the
    comparison: ``exact`` bytes, ``tolerance`` for GPU floats (:meth:`tolerance`), or
    ``rescore`` for a generation job of the inference guest (:meth:`rescore`: the re-run
    re-scores the claimed completions with the model and accepts them when every chosen token
    is within ``margin`` logits of the model's best one).

    A ``margin`` out of bounds (not finite, not above 0, over :data:`MAX_RESCORE_MARGIN`), or
    given without ``comparison="rescore"``, is refused here (:class:`sietch.BadCheck` from
    :meth:`rescore`; ``pydantic.ValidationError``, a ``ValueError`` too, from the
    constructor), before anything is sent."""

    model_config = ConfigDict(extra="forbid")

    sampling_ppm: int = Field(default=100_000, ge=0)
    """Share of such jobs checked, parts per million (1_000_000: every job)."""
    reruns: int = Field(default=1, ge=0, le=255)
    comparison: Literal["exact", "tolerance", "rescore"] = "exact"
    relative: float = 0.0
    absolute: float = 0.0
    float_outputs: list[FloatOutput] = Field(default_factory=list)
    margin: float = DEFAULT_RESCORE_MARGIN
    """Rescore only: the largest logit margin accepted between a claimed token and the
    model's choice (default :data:`DEFAULT_RESCORE_MARGIN`)."""

    @model_validator(mode="after")
    def _margin(self) -> Verification:
        if self.comparison == "rescore":
            check_margin(self.margin)
        elif "margin" in self.model_fields_set:
            raise BadCheck(f'a margin goes with comparison="rescore", not {self.comparison!r}')
        return self

    @classmethod
    def tolerance(
        cls,
        relative: float,
        absolute: float,
        arrays: dict[str, Literal["f32", "f64"]],
        *,
        sampling_ppm: int = 100_000,
        reruns: int = 1,
    ) -> Verification:
        """Compare these ``/output`` float arrays (``{file: "f32" | "f64"}``) within bounds
        instead of demanding identical bytes."""
        return cls(
            sampling_ppm=sampling_ppm,
            reruns=reruns,
            comparison="tolerance",
            relative=relative,
            absolute=absolute,
            float_outputs=[FloatOutput(path=p, kind=k) for p, k in arrays.items()],
        )

    @classmethod
    def rescore(
        cls,
        margin: float = DEFAULT_RESCORE_MARGIN,
        *,
        sampling_ppm: int = 100_000,
        reruns: int = 1,
    ) -> Verification:
        """Check a generation job of the inference guest by re-scoring its claimed
        completions instead of demanding identical bytes (for GPU providers, whose text may
        differ from the CPU's): a sampled job's re-run runs the model once over the claimed
        tokens and passes when each is within ``margin`` logits of the model's choice and
        every completion ends by the stop rule (docs/ai.md, "Re-scoring a generation").

        Raises :class:`sietch.BadCheck` for a margin the node would refuse (not finite, not
        above 0, over :data:`MAX_RESCORE_MARGIN`). Serialized as the Rust SDK's
        ``Job::rescore``: ``{"sampling_ppm", "reruns", "comparison": "rescore", "margin"}``."""
        return cls(
            sampling_ppm=sampling_ppm,
            reruns=reruns,
            comparison="rescore",
            margin=check_margin(margin),
        )


Data = Annotated[bytes, Strict()] | BlobRef
"""A blob of a job: bytes to upload with it, or a :class:`BlobRef` the node holds."""


class Job(BaseModel):
    """A job to submit.

    Example::

        job = Job(
            module=wasm_bytes,
            args=["--n", "3"],
            stdin=b"hello",
            inputs={"data.bin": data, "model.gguf": BlobRef(model_hash)},
            limits=Limits(fuel=10_000_000, memory_bytes=1 << 20),
            verification=Verification(sampling_ppm=1_000_000),  # check every job
            price_cap=10**17,
        )
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    module: Data
    """The WebAssembly module (a WASI preview 1 command)."""
    args: list[str] = Field(default_factory=list)
    """Arguments after the program name."""
    env: Mapping[str, str] = Field(default_factory=dict)
    """Environment variables."""
    stdin: Data | None = None
    inputs: Mapping[str, Data] = Field(default_factory=dict)
    """Files of ``/input``, by name."""
    limits: Limits = Field(default_factory=Limits)
    min_cpu_cores: int = Field(default=1, ge=0)
    features: list[str] = Field(default_factory=list)
    """Runtime features the provider's offer must list."""
    gpu: GpuNeeds | None = None
    verification: Verification = Field(default_factory=Verification)
    """How the job is spot-checked. A ``rescore`` check is for a generation job of the
    inference guest (its inputs :data:`MODEL_INPUT` and :data:`PROMPTS_INPUT`, as
    :meth:`sietch.Client.generate` makes it): any other job is refused here
    (``pydantic.ValidationError``), as its re-run could not re-score it."""
    price_cap: int = Field(default=100_000_000_000_000_000, ge=0)
    """The most the job may cost, token base units (default 0.1 token)."""
    deadline_secs: int = Field(default=600, ge=0)
    """Seconds from submission by which the result must arrive."""
    avoid: list[str] = Field(default_factory=list, max_length=MAX_AVOID)
    """Providers (EVM addresses, ``0x`` and 40 hex digits) the job must not go to, at most
    :data:`MAX_AVOID`: a job submitted again after one of them failed or was slow. The node
    refuses a malformed list (``bad_avoid``) and answers :class:`sietch.errors.NoMatch` with
    the blocker ``avoid`` at once when only these providers fit."""

    @field_validator("avoid")
    @classmethod
    def _evm_addresses(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for i, a in enumerate(v):
            if not _EVM_ADDRESS.match(a):
                raise ValueError(f"avoid[{i}]: {a!r:.90} is not an EVM address (0x and 40 hex digits)")
            if a not in out:
                out.append(a)
        return out

    @model_validator(mode="after")
    def _rescore_is_for_generations(self) -> Job:
        if self.verification.comparison == "rescore":
            missing = [n for n in (MODEL_INPUT, PROMPTS_INPUT) if n not in self.inputs]
            if missing:
                raise BadCheck(
                    "the rescore check is for a generation job of the inference guest (inputs "
                    f"{MODEL_INPUT} and {PROMPTS_INPUT}); this job has no {', '.join(missing)}: "
                    "use exact or tolerance"
                )
        return self

    def blobs(self) -> list[bytes]:
        """The bytes this job uploads (module, stdin, inputs), in that order."""
        parts: list[Data | None] = [self.module, self.stdin, *self.inputs.values()]
        return [p for p in parts if isinstance(p, bytes)]

    def submission(self) -> dict[str, Any]:
        """The body of ``POST /api/v1/jobs``: each blob named by its blake3 hash (the
        clients upload the bytes first, and check that the node computed the same hash)."""

        def name(d: Data) -> str:
            return d.hash if isinstance(d, BlobRef) else blob_hash(d)

        v = self.verification
        verification: dict[str, Any] = {
            "sampling_ppm": v.sampling_ppm,
            "reruns": v.reruns,
            "comparison": v.comparison,
        }
        if v.comparison == "tolerance":
            verification.update(
                relative=v.relative,
                absolute=v.absolute,
                float_outputs=[o.model_dump() for o in v.float_outputs],
            )
        elif v.comparison == "rescore":
            verification.update(margin=v.margin)
        return {
            "module": name(self.module),
            "args": list(self.args),
            "env": [[k, val] for k, val in self.env.items()],
            "stdin": None if self.stdin is None else name(self.stdin),
            "inputs": [{"name": n, "blob": name(d)} for n, d in self.inputs.items()],
            "limits": self.limits.model_dump(),
            "requirements": {
                "min_cpu_cores": self.min_cpu_cores,
                "features": list(self.features),
                "gpu": None if self.gpu is None else self.gpu.model_dump(),
            },
            "verification": verification,
            "price_cap": str(self.price_cap),
            "deadline_secs": self.deadline_secs,
            # Only when there is one: a node older than the field refuses unknown fields.
            **({"avoid": list(self.avoid)} if self.avoid else {}),
        }
