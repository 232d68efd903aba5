"""The Sietch SDK for Python: buy verified compute on Sietch, a peer-to-peer GPU compute
market, through a node's HTTP API.

A node does the market work (matching offers, tickets, spot checks, vouchers, disputes); the
SDK is how a program asks it to. It holds no keys: writes carry the node's API token
(``<data dir>/api-token``), reads carry nothing.

Example::

    from sietch import Client, Job, Limits, Verification

    with Client("http://127.0.0.1:7077", token) as node:
        done = node.run(Job(
            module=wasm,
            limits=Limits(fuel=10_000_000, memory_bytes=1 << 20),
            verification=Verification(sampling_ppm=1_000_000),  # check every job
            price_cap=10**17,
        ))
        print(done.outputs.stdout, done.paid, done.check)

:class:`Client` blocks; :class:`AsyncClient` is the same for asyncio. Both run one core of
operations (``sietch._core``), so they behave alike.
"""

from ._core import MAX_EVENT_BYTES, MAX_RESPONSE_BYTES
from .aio import AsyncClient, AsyncEventStream, AsyncJobEvents
from .client import Client, EventStream, JobEvents
from .errors import (
    ApiError,
    BadCheck,
    BadId,
    BadRequest,
    BadUrl,
    Busy,
    DecodeError,
    ErrorCode,
    JobFailed,
    NoMatch,
    NotFound,
    SietchError,
    Timeout,
    TooLarge,
    Unauthorized,
    Unavailable,
    Unreachable,
)
from .generate import (
    COMPLETIONS_OUTPUT,
    DEFAULT_GENERATION_FUEL,
    MODEL_INPUT,
    PROMPTS_INPUT,
    Completion,
    Generated,
    Generation,
    NoGuest,
    Prompt,
    find_llm_guest,
    parse_completions,
)
from .job import (
    DEFAULT_RESCORE_MARGIN,
    MAX_AVOID,
    MAX_RESCORE_MARGIN,
    BlobRef,
    FloatOutput,
    GpuNeeds,
    Job,
    Limits,
    Verification,
    blob_hash,
)
from .models import (
    Blob,
    BlobCache,
    ChainInfo,
    ChainRecord,
    Channel,
    Connections,
    Dispute,
    Event,
    Finished,
    GenerationSummary,
    JobCheck,
    JobRecord,
    NodeInfo,
    Offer,
    OfferGpu,
    Outputs,
    Provider,
    Reputation,
    Stats,
    StatsBucket,
    TokenInfo,
)
from .train import AsyncTrainer, TrainConfig, Trainer, TrainError  # the training driver

__version__ = "0.1.0"

__all__ = [
    "COMPLETIONS_OUTPUT",
    "DEFAULT_GENERATION_FUEL",
    "DEFAULT_RESCORE_MARGIN",
    "MAX_AVOID",
    "MAX_EVENT_BYTES",
    "MAX_RESCORE_MARGIN",
    "MAX_RESPONSE_BYTES",
    "MODEL_INPUT",
    "PROMPTS_INPUT",
    "ApiError",
    "AsyncClient",
    "AsyncEventStream",
    "AsyncJobEvents",
    "AsyncTrainer",
    "BadCheck",
    "BadId",
    "BadRequest",
    "BadUrl",
    "Blob",
    "BlobCache",
    "BlobRef",
    "Busy",
    "ChainInfo",
    "ChainRecord",
    "Channel",
    "Client",
    "Completion",
    "Connections",
    "DecodeError",
    "Dispute",
    "ErrorCode",
    "Event",
    "EventStream",
    "Finished",
    "FloatOutput",
    "Generated",
    "Generation",
    "GenerationSummary",
    "GpuNeeds",
    "Job",
    "JobCheck",
    "JobEvents",
    "JobFailed",
    "JobRecord",
    "Limits",
    "NoGuest",
    "NoMatch",
    "NodeInfo",
    "NotFound",
    "Offer",
    "OfferGpu",
    "Outputs",
    "Prompt",
    "Provider",
    "Reputation",
    "SietchError",
    "Stats",
    "StatsBucket",
    "Timeout",
    "TokenInfo",
    "TooLarge",
    "TrainConfig",
    "TrainError",
    "Trainer",
    "Unauthorized",
    "Unavailable",
    "Unreachable",
    "Verification",
    "__version__",
    "blob_hash",
    "find_llm_guest",
    "parse_completions",
]
