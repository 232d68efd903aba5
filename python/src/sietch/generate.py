"""Text generation in one call: :meth:`sietch.Client.generate` runs a batch of prompts
through a language model on the market (the inference guest ``llm.wasm`` of
``sandbox/guests/llm``, docs/ai.md) and returns the completions with what they cost.

The job is an ordinary one: its module is the inference guest, its inputs are
``model.gguf`` (the model, by content hash: uploaded to the node once) and
``prompts.jsonl`` (one JSON object per request), and its output is
``/output/completions.jsonl``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import BadCheck, DecodeError, SietchError
from .job import MODEL_INPUT as MODEL_INPUT
from .job import PROMPTS_INPUT as PROMPTS_INPUT
from .job import (
    DEFAULT_RESCORE_MARGIN,
    BlobRef,
    Job,
    Limits,
    Verification,
    check_margin,
)
from .models import Finished

Check = Literal["exact", "rescore"]
"""How a sampled generation is checked: ``exact`` (generated again, the outputs' hashes
compared) or ``rescore`` (the claimed completions re-scored within a margin of logits)."""

COMPLETIONS_OUTPUT = "completions.jsonl"
"""The name the inference guest writes its completions to, in ``/output``: one JSON object
per line."""
DEFAULT_GENERATION_FUEL = 20_000_000_000
"""Fuel a generation may burn by default: about 600 tokens of SmolLM2-135M."""


class Prompt(BaseModel):
    """One request of a batch, as the inference guest reads it (a line of
    ``prompts.jsonl``; ``sandbox/guests/llm/README.md``). Unset fields take the guest's
    defaults: the model's own system message, 64 tokens, greedy."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    """The user's message (or the whole text, with ``raw``)."""
    system: str | None = None
    raw: bool = False
    """The text as it is, without the chat template."""
    max_tokens: int | None = Field(default=None, ge=0, le=1024)
    temperature: float | None = None
    """Sampling temperature; 0 or ``None`` is greedy."""
    top_p: float | None = None
    seed: int | None = Field(default=None, ge=0, lt=1 << 64)
    """The sampler's seed (drawn from the job's id when ``None``: a re-run draws the same)."""
    stop: list[str] = Field(default_factory=list)
    """Texts that end the completion (not included in it)."""

    def line(self) -> str:
        """The request as one JSON line, without the fields left at their defaults."""
        return self.model_dump_json(exclude_defaults=True)


class Completion(BaseModel):
    """One completion, as the guest wrote it (a line of ``completions.jsonl``)."""

    model_config = ConfigDict(extra="allow")

    index: int
    """Which request of the batch."""
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish: str
    """``stop``, ``length`` or ``error``."""
    error: str | None = None


class Generation(BaseModel):
    """A generation job: the model, the prompts, and the job's limits and price.

    The defaults leave room for the model's context (256 MiB), burn at most
    :data:`DEFAULT_GENERATION_FUEL`, allow 5 minutes, sample 10% of such jobs, check a
    sampled one exactly, and cap the price at 1 token.

    ``check="rescore"`` checks a sampled job by re-scoring its claimed completions instead of
    generating again (for GPU providers, whose text may differ from the CPU's bit for bit):
    the re-run passes when every claimed token is within ``margin`` logits of the model's
    choice (default :data:`sietch.DEFAULT_RESCORE_MARGIN`, 0.1; at most
    :data:`sietch.MAX_RESCORE_MARGIN`). The Rust SDK's ``Generation::rescore(margin)``.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: bytes | BlobRef
    """The GGUF file's bytes (uploaded only when the node lacks them), or a blob it holds."""
    prompts: list[Prompt]
    fuel: int = Field(default=DEFAULT_GENERATION_FUEL, ge=0)
    memory_bytes: int = Field(default=256 << 20, ge=0)
    wall_time_ms: int = Field(default=300_000, ge=0)
    output_bytes: int = Field(default=4 << 20, ge=0)
    sampling_ppm: int = Field(default=100_000, ge=0)
    price_cap: int = Field(default=10**18, ge=0)
    check: Check = "exact"
    """How a sampled job is checked: ``exact`` or ``rescore``."""
    margin: float = DEFAULT_RESCORE_MARGIN
    """With ``check="rescore"``: the largest logit margin accepted."""

    @model_validator(mode="after")
    def _check(self) -> Generation:
        check_generation(self.check, self.margin if "margin" in self.model_fields_set else None)
        return self

    @classmethod
    def of(
        cls,
        model: bytes | BlobRef | str | os.PathLike[str],
        prompts: Iterable[str | Prompt],
        *,
        check: Check = "exact",
        margin: float | None = None,
        **kw: int,
    ) -> Generation:
        """A generation of ``prompts`` (texts or :class:`Prompt`) through ``model`` (bytes, a
        :class:`BlobRef`, a ``0x`` hash, or a GGUF file's path), checked by ``check`` (with
        ``margin``: see :class:`Generation`); :class:`sietch.BadCheck` for a check or margin
        the node would refuse."""
        checked = check_generation(check, margin)
        m: bytes | BlobRef
        if isinstance(model, (bytes, BlobRef)):
            m = model
        elif isinstance(model, str) and model.startswith("0x"):
            m = BlobRef(model)
        else:
            m = Path(model).read_bytes()
        ps = [p if isinstance(p, Prompt) else Prompt(prompt=p) for p in prompts]
        if check == "rescore":
            return cls(model=m, prompts=ps, check=check, margin=checked, **kw)
        return cls(model=m, prompts=ps, **kw)

    def verification(self) -> Verification:
        """How the job is spot-checked: its sampling, and the exact or rescore comparison."""
        if self.check == "rescore":
            return Verification.rescore(self.margin, sampling_ppm=self.sampling_ppm)
        return Verification(sampling_ppm=self.sampling_ppm)

    def prompts_jsonl(self) -> bytes:
        """The prompts as the guest reads them: one JSON object per line."""
        return "".join(p.line() + "\n" for p in self.prompts).encode()

    def job(self, guest: bytes | BlobRef, model: BlobRef) -> Job:
        """The job that runs it: ``guest`` (the inference guest's module) on ``model``."""
        return Job(
            module=guest,
            inputs={MODEL_INPUT: model, PROMPTS_INPUT: self.prompts_jsonl()},
            limits=Limits(
                fuel=self.fuel,
                memory_bytes=self.memory_bytes,
                wall_time_ms=self.wall_time_ms,
                output_bytes=self.output_bytes,
            ),
            verification=self.verification(),
            price_cap=self.price_cap,
        )


def check_generation(check: str, margin: float | None) -> float:
    """The margin a generation checked by ``check`` (``exact`` or ``rescore``) sends: for
    ``rescore``, ``margin`` (:data:`sietch.DEFAULT_RESCORE_MARGIN` when ``None``) if the node
    takes it. :class:`sietch.BadCheck` for another check, a margin out of bounds, or a margin
    given without ``rescore``."""
    if check == "rescore":
        return check_margin(DEFAULT_RESCORE_MARGIN if margin is None else margin)
    if check != "exact":
        raise BadCheck(f"check {check!r:.60}: a generation is checked exact or rescore")
    if margin is not None:
        raise BadCheck('a margin goes with check="rescore", not "exact"')
    return DEFAULT_RESCORE_MARGIN


class Generated(BaseModel):
    """What a generation gave and cost."""

    completions: list[Completion]
    """One per prompt that finished (a job that ran out of fuel keeps those finished before)."""
    job: Finished
    """The job as it finished: provider, paid, check, milliseconds, outputs, fuel."""

    @property
    def texts(self) -> list[str]:
        """The completions' texts, in the order of the prompts."""
        return [c.text for c in sorted(self.completions, key=lambda c: c.index)]

    @property
    def prompt_tokens(self) -> int:
        """Tokens of all prompts."""
        return sum(c.prompt_tokens for c in self.completions)

    @property
    def completion_tokens(self) -> int:
        """Tokens generated."""
        return sum(c.completion_tokens for c in self.completions)

    @property
    def tokens_per_second(self) -> float:
        """Tokens generated per second, from submission to the verified result."""
        return self.completion_tokens / (max(self.job.millis, 1) / 1000.0)

    @property
    def cost_per_1k_tokens(self) -> int:
        """What 1,000 tokens (prompt and completion) cost, in token base units."""
        return self.job.paid * 1000 // max(self.prompt_tokens + self.completion_tokens, 1)


def parse_completions(jsonl: bytes) -> list[Completion]:
    """The lines of ``completions.jsonl``; a line that is not a completion is a
    :class:`DecodeError`."""
    out = []
    for line in jsonl.split(b"\n"):
        if not line.strip():
            continue
        try:
            out.append(Completion.model_validate(json.loads(line)))
        except (ValueError, ValidationError) as e:
            raise DecodeError(f"a completion line {line[:200]!r}: {e}") from e
    return out


class NoGuest(SietchError, FileNotFoundError):
    """The inference guest ``llm.wasm`` was not found (see :func:`find_llm_guest`)."""


def _repo_roots() -> Sequence[Path]:
    roots: list[Path] = []
    env = os.environ.get("SIETCH_ROOT")
    if env:
        roots.append(Path(env))
    here = Path.cwd().resolve()
    roots.extend(p for p in (here, *here.parents) if (p / "guests" / "build.rs").is_file())
    return roots


def find_llm_guest() -> Path:
    """The inference guest's module, ``llm.wasm``: ``$SIETCH_LLM_WASM`` when set, else the
    newest build in a Sietch checkout (``$SIETCH_ROOT`` or the current directory and its
    parents): ``cargo build -p sietch-cli`` writes it under
    ``target/*/build/sietch-guests-*/out/``, ``sandbox/guests/llm/build.sh`` under
    ``sandbox/guests/llm/build/``. Raises :class:`NoGuest` naming where it looked."""
    env = os.environ.get("SIETCH_LLM_WASM")
    if env:
        p = Path(env)
        if not p.is_file():
            raise NoGuest(f"SIETCH_LLM_WASM={env} is not a file")
        return p
    found: list[Path] = []
    for root in _repo_roots():
        found.extend(root.glob("target/*/build/sietch-guests-*/out/llm.wasm"))
        found.extend(root.glob("sandbox/guests/llm/build/llm.wasm"))
    if not found:
        raise NoGuest(
            "no llm.wasm: set SIETCH_LLM_WASM to the inference guest's module, or run from a "
            "Sietch checkout after `cargo build -p sietch-cli` (or sandbox/guests/llm/build.sh)"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def guest_module(guest: bytes | BlobRef | str | os.PathLike[str] | None) -> bytes | BlobRef:
    """The inference guest as a job names it: bytes or a blob as given, a file's bytes for a
    path, a :class:`BlobRef` for a ``0x`` hash, :func:`find_llm_guest` for ``None``."""
    if guest is None:
        return find_llm_guest().read_bytes()
    if isinstance(guest, (bytes, BlobRef)):
        return guest
    if isinstance(guest, str) and guest.startswith("0x"):
        return BlobRef(guest)
    return Path(guest).read_bytes()
