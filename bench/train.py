"""Training benchmark on a real LLM (SmolLM2-135M-Instruct from the offline demo assets).

(a) training steps/s of the full model (30 layers) against the model pruned to 10 layers, same
    batch, LoRA r=16, through ContrastiveTrainer as `l3prune train` runs it;
(b) peak memory of the full model's training with and without gradient checkpointing;
(c) peak memory and steps/s of the full model's training with the cached loss (GradCache,
    `loss_mini_batch_size`) against the uncached loss, same batch (the run of (a) is the uncached one);
(d) elastic training (`elastic_depths`) at --elastic-depths layer counts in one run against one
    separate run per depth, same batch: seconds per step of the elastic run against the sum of the
    separate runs' (what training every depth costs), and its peak memory against the deepest run's.
Each configuration runs in a fresh process (peak memory: CUDA max allocated on a GPU, peak
resident memory on a CPU). Prints ratios measured in the same run: the machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from timing import peak_rss_mb


def step_timer():
    """A TrainerCallback whose `times` holds the moment each training step ended."""
    from transformers import TrainerCallback

    class StepTimes(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_end(self, *_, **__):
            self.times.append(time.perf_counter())

    return StepTimes()


def lora_encoder(args: argparse.Namespace, layers: int | None):
    """The model cut to `layers` (None: all), LoRA r=16 added, as `l3prune train` trains it."""
    from l3prune import LLMEncoder
    from l3prune.training.lora import add_lora

    encoder = LLMEncoder.from_pretrained(args.model, num_layers=layers, max_length=args.max_length)
    encoder.model.config.use_cache = False
    add_lora(encoder, r=16, alpha=32, dropout=0.05)
    return encoder


def training_arguments(args: argparse.Namespace):
    """The warm-up and timed steps of one configuration, nothing saved or logged."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=args.scratch,
        per_device_train_batch_size=args.batch_size,
        max_steps=args.warmup + args.steps,
        learning_rate=2e-4,
        activation_checkpointing=args.checkpointing,
        train_sampling_strategy="sequential",
        remove_unused_columns=False,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_strategy="no",
        dataloader_pin_memory=False,
    )


def measure(args: argparse.Namespace) -> dict:
    """Train `args.steps` steps of one configuration in this process (a fresh one: run_fresh);
    steps/s after warm-up, peak memory."""
    import torch

    from l3prune.dataset.utils import load_dataset
    from l3prune.loss.utils import load_loss
    from l3prune.training.elastic import ElasticLoss
    from l3prune.training.trainer import ContrastiveTrainer

    depths = sorted(args.elastic) if args.elastic else None
    encoder = lora_encoder(args, depths[-1] if depths else args.layers)
    rss_loaded = peak_rss_mb()
    dataset = load_dataset("jsonl", file_path=args.data, effective_batch_size=args.batch_size)
    timer = step_timer()
    loss_fn = load_loss("HardNegativeNLLLoss", scale=50.0)
    trainer = ContrastiveTrainer(
        encoder,
        loss_fn if depths is None else ElasticLoss(loss_fn, [1.0] * len(depths)),
        training_arguments(args),
        dataset,
        [timer],
        loss_mini_batch_size=args.loss_mini_batch_size,
        depths=depths,
    )
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    measured = timer.times[args.warmup - 1 :]
    return {
        "layers": encoder.num_layers,
        "steps_per_second": (len(measured) - 1) / (measured[-1] - measured[0]),
        "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mb(),
        "loaded_mb": None if cuda else rss_loaded,
        "device": "cuda" if cuda else "cpu",
    }


def run_fresh(
    args: argparse.Namespace,
    layers: int | None,
    checkpointing: bool,
    mini_batch_size: int | None = None,
    elastic: list[int] | None = None,
) -> dict:
    command = [sys.executable, __file__, "--one", "--model", args.model, "--data", args.data]
    command += ["--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--scratch", args.scratch]
    if layers is not None:
        command += ["--layers", str(layers)]
    if checkpointing:
        command.append("--checkpointing")
    if mini_batch_size is not None:
        command += ["--loss-mini-batch-size", str(mini_batch_size)]
    if elastic:
        command += ["--elastic", ",".join(map(str, elastic))]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def at_least_one(text: str) -> int:
    """A step count: the rate is taken between the last warm-up step's end and the last step's."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def layer_counts(text: str) -> list[int]:
    """'10,20,30' -> [10, 20, 30]: the elastic depths of (d), each a layer count of at least 1."""
    try:
        counts = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of layer counts") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every layer count must be at least 1")
    return counts


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resources/demo/model")
    parser.add_argument("--data", default="resources/demo/train.jsonl")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=at_least_one, default=3, help="timed steps, after the warm-up steps")
    parser.add_argument("--warmup", type=at_least_one, default=1, help="untimed steps first")
    parser.add_argument("--pruned-layers", type=int, default=10)
    parser.add_argument(
        "--mini-batch-size",
        type=at_least_one,
        default=2,
        help="the cached loss's loss_mini_batch_size in (c)",
    )
    parser.add_argument(
        "--elastic-depths",
        type=layer_counts,
        default=[10, 20, 30],
        help="the layer counts (d) trains together, e.g. 10,20,30 (the last should be the model's)",
    )
    parser.add_argument("--scratch", default="/tmp/l3prune-bench-train")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # one configuration, JSON out
    parser.add_argument("--layers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loss-mini-batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--elastic", type=layer_counts, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.one:
        print(json.dumps(measure(args)))
        return

    print(f"batch {args.batch_size} (query, positive, negative) x {args.max_length} tokens max, LoRA r=16")
    full = run_fresh(args, None, checkpointing=False)
    pruned = run_fresh(args, args.pruned_layers, checkpointing=False)
    full_gc = run_fresh(args, None, checkpointing=True)
    full_cached = run_fresh(args, None, checkpointing=False, mini_batch_size=args.mini_batch_size)
    print(
        f"(a) steps/s: {full['layers']} layers {full['steps_per_second']:.3f}, "
        f"{pruned['layers']} layers {pruned['steps_per_second']:.3f}: "
        f"speed-up {pruned['steps_per_second'] / full['steps_per_second']:.2f}x"
    )
    print(
        memory_line(
            "(b)", f"{full['layers']} layers, gradient checkpointing", full, full_gc, "without", "with"
        )
    )
    print(
        memory_line(
            "(c)",
            f"{full['layers']} layers, cached loss",
            full,
            full_cached,
            "uncached",
            f"mini-batch {args.mini_batch_size}",
        )
        + f"; steps/s {full['steps_per_second']:.3f} vs {full_cached['steps_per_second']:.3f} "
        f"({full_cached['steps_per_second'] / full['steps_per_second']:.2f}x)"
    )
    print(elastic_line(args, full, pruned))


def elastic_line(args: argparse.Namespace, full: dict, pruned: dict) -> str:
    """(d): the elastic run against one separate run per depth (reusing (a)'s runs of the same depth)."""
    known = {full["layers"]: full, pruned["layers"]: pruned}
    separate = [known.get(k) or run_fresh(args, k, checkpointing=False) for k in args.elastic_depths]
    elastic = run_fresh(args, None, checkpointing=False, elastic=args.elastic_depths)
    elastic_seconds = 1 / elastic["steps_per_second"]
    separate_seconds = sum(1 / run["steps_per_second"] for run in separate)
    deepest = max(separate, key=lambda run: run["layers"])
    parts = " + ".join(f"{1 / run['steps_per_second']:.3f}" for run in separate)
    return (
        f"(d) elastic over {','.join(map(str, args.elastic_depths))} layers: {elastic_seconds:.3f} s/step, "
        f"separate runs {parts} = "
        f"{separate_seconds:.3f} s/step ({elastic_seconds / separate_seconds:.2f}x the time); "
        + memory_line("", f"{deepest['layers']} layers", deepest, elastic, "alone", "elastic").lstrip()
    )


def memory_line(label: str, what: str, base: dict, other: dict, base_name: str, other_name: str) -> str:
    """Peak memory of two runs and their ratio; on a CPU also above the loaded model (part of the RSS)."""
    unit = "CUDA max allocated" if base["device"] == "cuda" else "peak RSS"
    line = (
        f"{label} {unit}, {what}: {base_name} {base['peak_mb']:.0f} MB, "
        f"{other_name} {other['peak_mb']:.0f} MB ({other['peak_mb'] / base['peak_mb']:.2f}x)"
    )
    if base["loaded_mb"] is not None:
        extra, extra_other = base["peak_mb"] - base["loaded_mb"], other["peak_mb"] - other["loaded_mb"]
        line += (
            f"; above the loaded model: {extra:.0f} MB vs {extra_other:.0f} MB ({extra_other / extra:.2f}x)"
        )
    return line


if __name__ == "__main__":
    main()
