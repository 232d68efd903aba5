"""Text from a language model on a Sietch market, in one call.

With a devnet running (``target/debug/sietch devnet --api-port 7077``), the model cached
(``bash scripts/model.sh`` prints its path) and run from a Sietch checkout after ``cargo build
-p sietch-cli`` (which builds the inference guest ``llm.wasm``; or set ``SIETCH_LLM_WASM``)::

    python examples/generate.py --data-dir /tmp/.tmpXXXX/buyer --model MODEL.gguf \\
        "What is the capital of France?"

``--check rescore`` (or ``rescore=MARGIN``) has a sampled job checked by re-scoring its
completions within MARGIN logits (default 0.1) instead of generating it again, as ``sietch
generate --check``; ``--sampling-ppm 1000000`` checks every job.
"""

from __future__ import annotations

import argparse

from sietch import Client, Prompt
from sietch.generate import Check


def parse_check(s: str) -> tuple[Check, float | None]:
    """``exact``, ``rescore`` or ``rescore=MARGIN``, as the CLI's ``--check``."""
    name, eq, margin = s.partition("=")
    if s == "exact":
        return "exact", None
    if name == "rescore":
        try:
            return "rescore", float(margin) if eq else None
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"{s!r}: want exact, rescore or rescore=MARGIN")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", required=True, help="the buyer node's data directory")
    p.add_argument("--url", default="http://127.0.0.1:7077", help="the node's API")
    p.add_argument("--model", required=True, help="a GGUF file, or the 0x hash of a blob")
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--check", type=parse_check, default=("exact", None),
                   metavar="exact|rescore[=MARGIN]", help="how a sampled job is checked")
    p.add_argument("--sampling-ppm", type=int, default=100_000, help="share of jobs checked")
    p.add_argument("prompts", nargs="+")
    a = p.parse_args()
    with Client.from_data_dir(a.data_dir, url=a.url) as node:
        out = node.generate(
            [Prompt(prompt=t, max_tokens=a.max_tokens) for t in a.prompts],
            model=a.model,
            check=a.check[0],
            margin=a.check[1],
            sampling_ppm=a.sampling_ppm,
            fuel=5_000_000_000,
            price_cap=5 * 10**18,  # the devnet's prices are high: a few tokens
        )
    for c in out.completions:
        print(f"[{c.index}] {c.text!r} ({c.finish})")
    print(
        f"{out.prompt_tokens} + {out.completion_tokens} tokens, {out.tokens_per_second:.1f} "
        f"tokens/s, paid {out.job.paid} ({out.cost_per_1k_tokens} per 1,000 tokens), "
        f"check: {out.job.check}"
    )


if __name__ == "__main__":
    main()
