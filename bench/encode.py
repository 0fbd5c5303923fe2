"""Encoder benchmark on a real LLM (SmolLM2-135M-Instruct from the offline demo assets).

(a) encode throughput against sentence-transformers on the same model, pooling (mean), texts and
    batch size;  (b) the model pruned to 10 of 30 layers against the full model;
(c) peak memory of loading 10 of 30 layers against all 30, in bf16 (each load in a fresh process).


Prints ratios measured in the same run (the machines are noisy; absolute figures are not comparable).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from timing import best_time


def real_texts(tasks_dir: Path, n: int) -> list[str]:
    rows = [json.loads(line) for line in (tasks_dir / "bbc_classification.jsonl").open()]
    texts = [" ".join(r["text"].split()[: 40 + 7 * (i % 20)]) for i, r in enumerate(rows)]  # varied lengths
    return (texts * (n // len(texts) + 1))[:n]


def peak_rss_of_load(model: str, num_layers: int | None) -> float:
    """Peak resident memory (MB) of a fresh process that loads the model in bf16 and encodes once.

    VmHWM, not ru_maxrss: the latter survives fork + exec, so a child would report its parent's peak.
    """
    code = (
        "import torch; from l3prune import LLMEncoder;"
        f"e = LLMEncoder.from_pretrained({model!r}, dtype=torch.bfloat16, num_layers={num_layers!r});"
        "e.encode(['a short text']);"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resources/demo/model")
    parser.add_argument(
        "--tasks", default="resources/demo/tasks", help="folder with bbc_classification.jsonl"
    )
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from l3prune import LLMEncoder

    texts = real_texts(Path(args.tasks), args.texts)
    encoder = LLMEncoder.from_pretrained(args.model, pooling_mode="mean", max_length=512)
    # plain text in, as ours: with a chat template, sentence-transformers 6 would wrap every text in it
    transformer = Transformer(
        args.model,
        max_seq_length=512,
        modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        module_output_name="token_embeddings",
    )
    if transformer.tokenizer.pad_token is None:
        transformer.tokenizer.pad_token = transformer.tokenizer.eos_token
    st = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")])
    print(f"torch threads: {torch.get_num_threads()}, {len(texts)} texts, batch {args.batch_size}")
    same = (encoder.encode(texts[:8]) - st.encode(texts[:8], convert_to_tensor=True).cpu()).abs().max().item()
    print(f"same work: max |difference| between the two libraries' embeddings {same:.1e}")

    t_st, _ = best_time(lambda: st.encode(texts, batch_size=args.batch_size), args.repeats)
    t_ours, _ = best_time(lambda: encoder.encode(texts, batch_size=args.batch_size), args.repeats)
    print(
        f"(a) sentence-transformers {len(texts) / t_st:.1f} texts/s, l3prune {len(texts) / t_ours:.1f} texts/s: "
        f"ratio {t_st / t_ours:.2f} (goal >= 1.0)"
    )

    full_layers = encoder.num_layers
    encoder.prune(10)
    t_pruned, _ = best_time(lambda: encoder.encode(texts, batch_size=args.batch_size), args.repeats)
    print(
        f"(b) {full_layers} layers {len(texts) / t_ours:.1f} texts/s, 10 layers {len(texts) / t_pruned:.1f} texts/s: "
        f"speedup {t_ours / t_pruned:.2f}x (goal >= 2.5x, ideal {full_layers / 10:.1f}x)"
    )

    full_mb, part_mb = peak_rss_of_load(args.model, None), peak_rss_of_load(args.model, 10)
    print(
        f"(c) peak RSS, bf16 load + encode: all {full_layers} layers {full_mb:.0f} MB, first 10 layers {part_mb:.0f} MB: "
        f"ratio {part_mb / full_mb:.2f}"
    )


if __name__ == "__main__":
    main()
