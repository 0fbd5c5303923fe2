"""The embedding cache on the Lee document-similarity task: texts encoded and wall time, with and without.

mteb's STS evaluator encodes both sides of all 1,225 pairs (2,450 texts over 50 documents); the
wrapper's cache encodes each (instruction, document) once. Both runs must give the same scores.

    python bench/mteb_cache.py                       # SmolLM2-135M-Instruct from `l3prune demo-assets`
    python bench/mteb_cache.py --num-layers 4        # a pruned model keeps the uncached run affordable on CPU
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mteb  # noqa: F401  (imported here so that neither timed run pays for it)

from l3prune import LLMEncoder
from l3prune.evaluation import EvalConfig, LocalTaskSpec, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resources/demo/model", help="model folder or name")
    parser.add_argument("--num-layers", type=int, help="keep only the first K layers (default: all)")
    parser.add_argument("--task", default="resources/demo/tasks/lee_sts.jsonl", help="Lee STS jsonl")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    encoder = LLMEncoder.from_pretrained(args.model, num_layers=args.num_layers)
    task = LocalTaskSpec(
        "LeeDocumentSimilarity", "STS", {"path": Path(args.task)}, "Retrieve semantically similar text:"
    )
    print(f"model {args.model}: {encoder.num_layers} layers, {encoder.num_parameters():,} parameters")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cache in (True, False):
            config = EvalConfig(local_tasks=[task], batch_size=args.batch_size, cache=cache)
            start = time.perf_counter()
            summary = evaluate(encoder, config, Path(tmp) / f"cache-{cache}" / "mteb.json", name="bench/lee")
            runs[cache] = (summary, time.perf_counter() - start)
            print(
                f"cache={cache!s:5}  texts requested {summary['texts_requested']:5d}  encoded {summary['texts_encoded']:5d}"
                f"  encode {summary['encode_seconds']:7.1f} s  wall {runs[cache][1]:7.1f} s"
                f"  cosine_spearman {summary['average']:.4f}"
            )
    (cached, cached_wall), (uncached, uncached_wall) = runs[True], runs[False]
    # the same texts in other batches: equal up to float rounding
    difference = abs(cached["average"] - uncached["average"])
    assert difference < 1e-4, f"scores differ by {difference}"
    print(
        f"texts encoded: {uncached['texts_encoded'] / cached['texts_encoded']:.0f}x fewer with the cache; "
        f"wall time {uncached_wall / cached_wall:.1f}x shorter; scores differ by {difference:.1e}"
    )


if __name__ == "__main__":
    main()
