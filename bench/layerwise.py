"""Layerwise-loss benchmark on a real LLM (SmolLM2-135M-Instruct, 30 layers) with real batches.

    python bench/layerwise.py --model resources/demo/model --data resources/demo/train.jsonl

Prints, measured in one run:
  - the one-pass layerwise loss time over one plain forward + loss of the full model on the same
    batches (goal <= 1.15);
  - the naive way (cut to each k = 1..N and run forward again) over the one-pass way
    (ideal about (N + 1) / 2).
"""

from __future__ import annotations

import argparse
import copy

from timing import best_time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resources/demo/model")
    parser.add_argument("--data", default="resources/demo/train.jsonl")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-batches", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    return parser.parse_args()


def plain_forward_loss(encoder, loss_fn, batches: list[list]) -> float:
    """The summed loss of one plain forward of the encoder as it is over every batch."""
    import torch

    with torch.inference_mode():
        return sum(
            loss_fn(*(encoder(encoder.tokenize(list(col))) for col in zip(*batch, strict=True))).item()
            for batch in batches
        )


def naive_curve(encoder, loss_fn, batches: list[list]) -> list[float]:
    """The layerwise loss the naive way: cut to each k = 1..N layers and run the forward again."""
    from l3prune.encoder.layers import base_model, keep_first_layers

    body = base_model(encoder.model)
    all_layers, full_config = body.layers, copy.deepcopy(body.config)
    curve = []
    for k in range(1, len(all_layers) + 1):
        keep_first_layers(encoder.model, k)
        curve.append(plain_forward_loss(encoder, loss_fn, batches) / len(batches))
        body.layers, body.config = all_layers, copy.deepcopy(full_config)
    return curve


def main() -> None:
    args = parse_args()

    import torch

    from l3prune import LLMEncoder
    from l3prune.dataset.utils import load_dataset
    from l3prune.layerwise import layerwise_loss
    from l3prune.loss.utils import load_loss

    encoder = LLMEncoder.from_pretrained(args.model, pooling_mode="weighted_mean")
    dataset = load_dataset("jsonl", file_path=args.data, effective_batch_size=args.batch_size, seed=0)
    loss_fn = load_loss("HardNegativeNLLLoss", scale=50.0)
    batches = [
        [dataset[i] for i in range(b * args.batch_size, (b + 1) * args.batch_size)]
        for b in range(args.num_batches)
    ]

    t_plain, _ = best_time(lambda: plain_forward_loss(encoder, loss_fn, batches), args.repeats)
    t_one, curve = best_time(
        lambda: layerwise_loss(encoder, dataset, loss_fn, args.batch_size, args.num_batches), args.repeats
    )
    t_naive, naive = best_time(lambda: naive_curve(encoder, loss_fn, batches), args.repeats)
    n = len(curve)
    drift = max(abs(a - b) for a, b in zip(curve, naive, strict=True))
    print(
        f"{n} layers, {args.num_batches} batches of {args.batch_size} triples, torch threads {torch.get_num_threads()}"
    )
    print(
        f"plain forward+loss {t_plain:.2f} s, one-pass layerwise {t_one:.2f} s: ratio {t_one / t_plain:.3f} (goal <= 1.15)"
    )
    print(
        f"naive per-k {t_naive:.2f} s: {t_naive / t_one:.1f}x the one-pass time (ideal ~{(n + 1) / 2:.1f}x); "
        f"max |difference| between the curves {drift:.2e}"
    )


if __name__ == "__main__":
    main()
