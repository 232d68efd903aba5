"""What the node's API returns, as typed models (pydantic v2).

Token amounts are ``int`` base units (the API sends decimal strings: they exceed what JSON
numbers hold); hashes, ids and addresses are ``0x`` hex strings; byte contents (stdout,
``/output`` files) are ``bytes`` (the API sends base64). Every model keeps fields a newer node
adds (``model_extra``), so an SDK older than its node still reads it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from .errors import DecodeError

JobState = Literal["requested", "accepted", "running", "done", "checked", "paid", "refused", "failed"]
"""A job's state as the node stores it."""


def _amount(v: object) -> int:
    if isinstance(v, bool):
        raise ValueError("an amount is a decimal string, not a boolean")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.isdigit():
        return int(v)
    raise ValueError(f"{v!r} is not an amount (decimal digits)")


Amount = Annotated[int, BeforeValidator(_amount), PlainSerializer(str, return_type=str)]
"""Token base units: an ``int`` here, a decimal string on the wire."""


def _b64(v: object) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        try:
            return base64.b64decode(v, validate=True)
        except binascii.Error as e:
            raise ValueError(f"not base64: {e}") from e
    raise ValueError("expected base64 text")


def _unb64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


B64Bytes = Annotated[bytes, BeforeValidator(_b64), PlainSerializer(_unb64, return_type=str)]
"""Bytes here, base64 on the wire."""


class Model(BaseModel):
    """The base of the API's models: unknown fields are kept, not refused."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Connections(Model):
    """A node's connection counters, since it started."""

    open: int = 0
    opened: int = 0
    failed: int = 0
    dials_refused: int = 0
    peers_refused: int = 0
    discovery_requests_served: int = 0


class ChainInfo(Model):
    """The chain a node settles on."""

    chain_id: int
    escrow: str
    token: str


class TokenInfo(Model):
    """The settlement token, as a person reads its amounts: every amount of the API is in its
    base units (``amount / 10**decimals`` tokens)."""

    address: str
    symbol: str
    decimals: int

    def tokens(self, base_units: int | str) -> str:
        """``base_units`` in the token's own units, exact, with its symbol: ``2.5 USDC``."""
        v = int(base_units)
        whole, frac = divmod(abs(v), 10**self.decimals)
        digits = f"{frac:0{self.decimals}d}".rstrip("0") if self.decimals else ""
        sign = "-" if v < 0 else ""
        return f"{sign}{whole}{'.' + digits if digits else ''} {self.symbol}"


class NodeInfo(Model):
    """The node: identity, peers, gossip and connection counters, chain."""

    peer_id: str
    evm_address: str
    """Its EVM account: the buyer of the jobs submitted through it."""
    listen_addrs: list[str] = Field(default_factory=list)
    peers: list[str] = Field(default_factory=list)
    offers: int = 0
    """Offers in its order book."""
    channels_opening: int = 0
    gossip: dict[str, int] = Field(default_factory=dict)
    connections: Connections = Field(default_factory=Connections)
    chain: ChainInfo | None = None
    token: TokenInfo | None = None
    """How the settlement token's amounts read (``None`` without a chain, or from an older node)."""


class OfferGpu(Model):
    """A GPU an offer includes."""

    model: str
    memory_bytes: int
    compute_capability: str


class Offer(Model):
    """A live offer of the order book."""

    provider: str = ""
    """The provider's node key (hex)."""
    peer_id: str | None = None
    evm_address: str
    cpu_cores: int
    memory_bytes: int
    gpus: list[OfferGpu] = Field(default_factory=list)
    price_per_gfuel: Amount
    """Price per 10^9 fuel, base units."""
    price_per_gpu_second: Amount = 0
    stake: Amount
    addresses: list[str] = Field(default_factory=list)
    sequence: int = 0
    expires_at: int
    """Unix seconds."""


class Reputation(Model):
    """What a node has counted of a provider."""

    score: float
    """In (0, 1); 0.5 when nothing is known."""
    settled_jobs: int = 0
    checks_passed: int = 0
    checks_failed: int = 0
    slashes: int = 0
    disputes: int = 0


class Provider(Model):
    """A provider with its offer (if live), stake and reputation."""

    offer: bool = True
    """Whether it has a live offer (else: registered on chain, quiet or slashed out)."""
    evm_address: str
    peer_id: str | None = None
    provider: str = ""
    offered_stake: Amount | None = None
    stake: Amount | None = None
    """Stake on chain, base units (``None`` when the node follows no chain)."""
    registered: bool | None = None
    price_per_gfuel: Amount | None = None
    cpu_cores: int | None = None
    memory_bytes: int | None = None
    gpus: list[str] = Field(default_factory=list)
    reputation: Reputation


class Channel(Model):
    """A payment channel of the node's buyer."""

    channel: str
    provider: str
    cumulative: Amount
    """The latest voucher signed, base units."""
    deposit: Amount


class Outputs(Model):
    """A job's outputs."""

    outcome: str
    """How it ended, in words (``exited with code 0``)."""
    exit_code: int | None = None
    stdout: B64Bytes = b""
    files: dict[str, B64Bytes] = Field(default_factory=dict)
    """``/output`` files by name."""
    output_hash: str
    """The output hash the provider committed to."""
    fuel_used: int
    amount: Amount
    """What it cost, base units."""

    def file(self, name: str) -> bytes | None:
        """An ``/output`` file's bytes, if the job wrote it."""
        return self.files.get(name)


class Finished(Model):
    """A finished job, as :meth:`sietch.Client.run` returns it."""

    job_id: str
    provider: str
    """The provider whose result stands."""
    paid: Amount
    """Paid for it, base units (``0`` when the provider was found wrong)."""
    check: str | None = None
    """The spot check's decision when it was sampled: ``Passed``, ``ProviderRight``,
    ``ProviderWrong`` or ``Undecided { .. }``; ``None`` when it was not sampled."""
    millis: int
    """Milliseconds from submission to the verified result."""
    outputs: Outputs


class JobCheck(Model):
    """What the node knows of a job's spot check."""

    sampled: bool = False
    reruns: int = 0
    passed: bool | None = None
    decision: str | None = None


class GenerationSummary(Model):
    """What a generation job gave (the node's summary of ``completions.jsonl``)."""

    prompts: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    seconds: int
    tokens_per_second: float
    cost_per_1k_tokens: Amount | None = None
    first_text: str
    first_text_truncated: bool
    first_finish: str | None = None


class JobRecord(Model):
    """A job as the node stored it."""

    job_id: str
    spec_hash: str = ""
    state: JobState | str
    counterparty: str = ""
    """The provider on the buyer side (zero until one delivered)."""
    provider: str | None = None
    buyer: str | None = None
    outcome: str | None = None
    check: JobCheck = Field(default_factory=JobCheck)
    channel: str | None = None
    amount: Amount | None = None
    fuel_used: int | None = None
    output_hash: str | None = None
    note: str = ""
    """Why it failed, when it did."""
    created_at: int = 0
    updated_at: int = 0
    outputs: Outputs | None = None
    generation: GenerationSummary | bool | None = None
    sent_to: list[str] = Field(default_factory=list)
    """The providers the node sent the job to, in order (the last one runs it, or ran it):
    what a job submitted again elsewhere avoids (:attr:`sietch.Job.avoid`). Empty from a node
    that does not say, and in job lists."""

    @property
    def is_final(self) -> bool:
        """Whether nothing will change it any more."""
        return self.state in ("paid", "refused", "failed") or (
            self.state == "done" and self.outputs is not None
        )


class ChainRecord(Model):
    """An escrow event a node saw on chain."""

    block: int = 0
    kind: str
    fields: dict[str, Any] = Field(default_factory=dict)
    seen_at: int = 0


class Dispute(Model):
    """A ticket claimed, disputed or withheld, with what happened to it; for a provider this
    node found wrong, the check's decision and its evidence (the signed commitments)."""

    ticket: str
    job: str | None = None
    state: str
    outcome: str | None = None
    events: list[ChainRecord] = Field(default_factory=list)
    withheld_by_this_node: bool = False
    decision: str | None = None
    evidence: dict[str, Any] | None = None


class StatsBucket(Model):
    """Ten seconds of a node's activity."""

    start: int
    jobs: int = 0
    failed: int = 0
    checks: int = 0
    paid: Amount = 0
    fuel: int = 0


class Stats(Model):
    """Jobs, checks, charges and fuel over the last hour, in buckets."""

    bucket_secs: int
    buckets: list[StatsBucket] = Field(default_factory=list)


class Blob(Model):
    """A blob a node holds."""

    hash: str
    bytes: int
    last_used: int = 0


class BlobCache(Model):
    """The node's blob store: totals, quota and its blobs, most recently used first."""

    bytes: int
    count: int
    quota_bytes: int
    blobs: list[Blob] = Field(default_factory=list)


class Uploaded(Model):
    """An uploaded blob: its blake3 hash and size."""

    hash: str
    size: int


class Event(Model):
    """Something that happened in the node, from its event stream.

    ``kind`` names it (``submitted``, ``sent``, ``retrying``, ``result_in``, ``checking``,
    ``checked``, ``finished``, ``channel_opened``, ``escrow``, ``lagged``, ...); ``data`` is
    the whole JSON object; ``id`` is the stream's event id when the node sends one.
    """

    kind: str
    data: dict[str, Any]
    id: str | None = None

    @property
    def job(self) -> str | None:
        """The job it is about, if any."""
        j = self.data.get("job")
        return j if isinstance(j, str) else None

    @classmethod
    def of(cls, data: object, id: str | None = None) -> Event:
        """An event from its JSON object."""
        if not isinstance(data, dict):
            raise DecodeError(f"an event that is not a JSON object: {data!r:.200}")
        return cls(kind=str(data.get("kind", "")), data=data, id=id)
