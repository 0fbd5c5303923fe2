"""GPU check: Llama-3-8B's shape (random weights, bf16) at the paper's batch, in one run on one GPU.

    python bench/gpu.py                       # one GPU, well under 8 minutes on an H200
    python bench/gpu.py --smoke               # the same code on a tiny model, CPU, seconds
    python bench/gpu.py --smoke --device cuda # the same code on a tiny model on the GPU: a quick
                                              # check of what only CUDA can break, before the real run

Prints time and peak memory (CUDA max allocated, reset before each part, "from" the memory in use
as it starts; peak RSS on a CPU) of:
  - the layerwise loss (l3prune.layerwise.layerwise_loss) at batch 64 triples x 512 tokens;
  - encode throughput (LLMEncoder.encode) of all 32 layers, then of the model pruned to 8;
  - one training step at the paper's batch (64 triples x 512 tokens, LoRA r=16 on every projection,
    AdamW, bf16, gradient checkpointing) through l3prune.training.train_variant, as `l3prune train`
    runs it, with the cached loss (config key loss_mini_batch_size) and without; the time is the
    last step's, from the run's own training_log.csv (the steps before it are warm-up).
No hub: the model is built from a hand-written LlamaConfig, initialised on the device, saved to a
scratch folder (training loads its model from a folder); the tokenizer is a byte-level BPE trained
offline (tests/tiny_models.py), its ids well below the vocabulary size. Every text is cut at 512
tokens. A part that fails prints its traceback to stderr and FAILED in the table; the others still
run and the exit status is 1. Running out of memory in the uncached training step is a result (the
reason for the cached loss), not a failure. Each part's line also goes to stderr as it ends, so a
run stopped at a time limit keeps what it measured. `--parts` reruns some parts alone.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import math
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(
    0, str(ROOT)
)  # this checkout's l3prune, installed or not (the GPU machine may have it only as files)

LLAMA3_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    max_position_embeddings=8192,
    rope_theta=500000,
    rms_norm_eps=1e-5,
)
TINY = dict(LLAMA3_8B, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4)
TINY.update(num_key_value_heads=2, vocab_size=512, max_position_embeddings=256)
# the tokenizer's special ids (tests/tiny_models.py): <pad> 0, <s> 1, </s> 2
SPECIAL_IDS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)


@dataclass(frozen=True)
class Shape:
    """What one run measures: the model, the batch (triples) and the token count of every text."""

    model: dict
    batch_size: int
    max_length: int
    layerwise_batches: int
    encode_texts: int
    pruned_layers: int
    mini_batch_size: int


PAPER = Shape(LLAMA3_8B, 64, 512, 2, 512, 8, 8)
SMOKE = Shape(TINY, 4, 32, 2, 16, 2, 2)
PART_GROUPS = ("layerwise", "encode", "train")


@dataclass
class Row:
    """One line of the table: a part's time per unit, its rate and its peak memory, or why it has none."""

    part: str
    status: str = "ok"  # ok, failed, skipped, out of memory
    seconds: float | None = None
    unit: str = "s"
    rate: float | None = None
    rate_unit: str = ""
    peak_gib: float | None = None
    start_gib: float | None = None
    note: str = ""


@dataclass
class Bench:
    """Everything the parts share: the arguments, the scratch folder, the model and data made once."""

    args: argparse.Namespace
    shape: Shape
    workdir: Path
    meter: PeakMemory
    encoder: object = None  # the in-memory LLMEncoder of the layerwise and encode parts
    model_dir: Path | None = None
    model_dir_problem: str = "the model was not built"
    data_file: Path | None = None
    texts: list = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def progress(self, line: str) -> None:
        """A line on stderr as each part starts and ends: its figures survive a run killed at its time limit."""
        print(f"[gpu.py {time.perf_counter() - self.started:5.0f} s] {line}", file=sys.stderr, flush=True)


class PeakMemory:
    """Peak memory since `reset()`: CUDA max allocated, or on a CPU the process's peak RSS (VmHWM,
    reset through /proc/self/clear_refs)."""

    def __init__(self, device: str):
        import torch

        self.torch = torch
        self.cuda = device == "cuda"
        self.what = "CUDA max allocated" if self.cuda else "peak RSS"

    def reset(self) -> float:
        """Free what earlier parts left, start counting again; returns the memory in use now (GiB)."""
        gc.collect()
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()
            return self.torch.cuda.memory_allocated() / 2**30
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass  # the peak then counts from the process start
        return _proc_status_kib("VmRSS") / 2**20

    def peak_gib(self) -> float:
        if self.cuda:
            return self.torch.cuda.max_memory_allocated() / 2**30
        return _proc_status_kib("VmHWM") / 2**20

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()


def _proc_status_kib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return math.nan


# ---------------------------------------------------------------------------------------- setup
def build_tokenizer():
    """The tests' offline byte-level BPE (vocabulary 512): no hub, and every id < either vocab size."""
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import build_tokenizer as tiny_tokenizer

    return tiny_tokenizer()


def build_model(shape: Shape, device: str, dtype):
    """A random LlamaModel of `shape`, its weights created and initialised on `device` directly."""
    import torch
    from transformers import AutoModel, LlamaConfig

    config = LlamaConfig(**shape.model, **SPECIAL_IDS)
    torch.manual_seed(0)
    # only the construction under the default device: tokenizer outputs must stay CPU tensors (pinned memory)
    with torch.device(device):
        model = AutoModel.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model


def synthetic_texts(count: int, words_per_text: int, seed: int = 0) -> list[str]:
    """Random-word texts, each longer than the token limit, so that every one is cut to exactly it."""
    vocabulary = (
        "the model layer text query document passage retrieve question answer encoder prune small "
        "large loss train data search web protein summit mountain leader meeting chart marathon "
        "guideline requirement average women grams day english language river city history"
    ).split()
    rng = random.Random(seed)
    return [" ".join(rng.choices(vocabulary, k=words_per_text)) for _ in range(count)]


def write_triples(path: Path, texts: list[str], rows: int) -> None:
    """A jsonl of (instruction, query, positive, negative) rows drawn from `texts`."""
    import json

    rng = random.Random(1)
    with path.open("w") as f:
        for _ in range(rows):
            query, positive, negative = rng.sample(texts, 3)
            record = dict(instruction="Given a question, retrieve passages that answer it", query=query)
            f.write(json.dumps(record | dict(positive=positive, negative=negative)) + "\n")


def save_model(bench: Bench, model, tokenizer) -> None:
    """The model folder train_variant loads, if the scratch disk has room for it."""
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    free = shutil.disk_usage(bench.workdir).free
    if free < 1.1 * size:
        bench.model_dir_problem = (
            f"{bench.workdir} has {free / 2**30:.1f} GiB free, the model needs {size / 2**30:.1f} GiB; "
            "give a --workdir with room"
        )
        return
    folder = bench.workdir / "model"
    try:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    except Exception as error:  # noqa: BLE001 - the layerwise and encode parts need no folder
        traceback.print_exc()
        shutil.rmtree(folder, ignore_errors=True)
        bench.model_dir_problem = f"saving the model to {folder} failed: {error}"
        return
    bench.model_dir = folder


def setup(bench: Bench) -> str:
    """Build the model, tokenizer, texts and data file; returns a line saying what was built and how fast."""
    import torch

    from l3prune import LLMEncoder

    shape, device = bench.shape, bench.args.device
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    start = time.perf_counter()
    tokenizer = build_tokenizer()
    model = build_model(shape, device, dtype)
    bench.meter.sync()
    built = time.perf_counter()
    save_model(bench, model, tokenizer)
    saved = time.perf_counter()
    bench.encoder = LLMEncoder(
        model,
        tokenizer,
        pooling_mode="weighted_mean",
        max_length=shape.max_length,
        doc_max_length=shape.max_length,
    )
    pool = max(shape.encode_texts, 3 * shape.batch_size)
    bench.texts = synthetic_texts(pool, 2 * shape.max_length)
    bench.data_file = bench.workdir / "triples.jsonl"
    batches = max(bench.args.train_steps, shape.layerwise_batches) + 1
    write_triples(bench.data_file, bench.texts, shape.batch_size * batches)
    # warm-up: first-call costs (CUDA context, cuBLAS handles, kernel choice) fall outside every part
    bench.encoder.encode(bench.texts[: shape.batch_size], batch_size=shape.batch_size)
    bench.meter.sync()
    params = sum(p.numel() for p in model.parameters())
    lengths = set(bench.encoder.tokenize(bench.texts[:8])["attention_mask"].sum(dim=1).tolist())
    return (
        f"setup: {params:,} parameters built in {built - start:.1f} s, saved in {saved - built:.1f} s, "
        f"warm-up {time.perf_counter() - saved:.1f} s; tokens per text {sorted(lengths)}"
    )


# ---------------------------------------------------------------------------------------- parts
def timed(bench: Bench, fn) -> tuple[float, object]:
    bench.meter.sync()
    start = time.perf_counter()
    result = fn()
    bench.meter.sync()
    return time.perf_counter() - start, result


def part_layerwise(bench: Bench, row: Row) -> None:
    from l3prune.dataset.utils import load_dataset
    from l3prune.layerwise import layerwise_loss
    from l3prune.loss.utils import load_loss

    shape = bench.shape
    dataset = load_dataset("jsonl", file_path=bench.data_file, effective_batch_size=shape.batch_size, seed=0)
    loss_fn = load_loss("HardNegativeNLLLoss", scale=50.0)
    seconds, curve = timed(
        bench,
        lambda: layerwise_loss(bench.encoder, dataset, loss_fn, shape.batch_size, shape.layerwise_batches),
    )
    if len(curve) != bench.encoder.num_layers or not all(math.isfinite(v) for v in curve):
        raise RuntimeError(
            f"layerwise loss curve of {len(curve)} values for {bench.encoder.num_layers} layers: {curve}"
        )
    row.seconds, row.unit = seconds / shape.layerwise_batches, "s/batch"
    row.rate, row.rate_unit = shape.batch_size * shape.layerwise_batches / seconds, "triples/s"
    row.note = f"{shape.layerwise_batches} batches; loss at 1 and {len(curve)} layers {curve[0]:.3f}, {curve[-1]:.3f}"


def part_encode(bench: Bench, row: Row, prune_to: int | None) -> None:
    encoder, shape = bench.encoder, bench.shape
    if prune_to is not None:
        encoder.prune(prune_to)
    texts = bench.texts[: shape.encode_texts]
    seconds, embeddings = timed(bench, lambda: encoder.encode(texts, batch_size=shape.batch_size))
    if (
        tuple(embeddings.shape) != (len(texts), encoder.model.config.hidden_size)
        or not embeddings.isfinite().all()
    ):
        raise RuntimeError(f"encode gave embeddings of shape {tuple(embeddings.shape)}, or non-finite ones")
    row.part = f"encode, {encoder.num_layers} layers"
    row.seconds, row.rate, row.rate_unit = seconds, len(texts) / seconds, "texts/s"
    row.note = f"{len(texts)} texts, batch {shape.batch_size}"


def cached_loss_missing() -> str | None:
    """Why the cached loss cannot be measured, or None: the config key reaches training only when
    ContrastiveTrainer takes it and l3prune.training.run hands it over."""
    import inspect

    import l3prune.training.run
    from l3prune.training.trainer import ContrastiveTrainer

    takes = "loss_mini_batch_size" in inspect.signature(ContrastiveTrainer.__init__).parameters
    if takes and "config.loss_mini_batch_size" in inspect.getsource(l3prune.training.run):
        return None
    return (
        "skipped: l3prune.training does not use loss_mini_batch_size yet (the cached loss has not landed), "
        "so this would measure the uncached loss again"
    )


def train_config(bench: Bench, mini_batch_size: int | None) -> dict:
    """A training config as a user writes one: the paper's LoRA, loss and batch, one variant, a few steps."""
    shape = bench.shape
    config = dict(
        model_name_or_path=str(bench.model_dir),
        pooling_mode="weighted_mean",
        max_seq_length=shape.max_length,
        doc_max_length=shape.max_length,
        dataset_name="jsonl",
        dataset_file_path=str(bench.data_file),
        per_device_train_batch_size=shape.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=2e-4,
        num_train_epochs=1,
        gradient_checkpointing=True,
        use_adapter=True,
        lora_r=16,
        lora_dropout=0.05,
        loss_scale=50,
        seed=42,
        stop_after_n_steps=bench.args.train_steps,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    if bench.args.device == "cuda":
        config.update(torch_dtype="bfloat16", attn_implementation="sdpa", bf16=True)
    else:  # the CPU also where a GPU is visible
        config.update(torch_dtype="float32", use_cpu=True)
    if mini_batch_size is not None:
        config["loss_mini_batch_size"] = mini_batch_size
    return config


def part_train(bench: Bench, row: Row, mini_batch_size: int | None) -> None:
    from l3prune.config import parse_config
    from l3prune.training import train_variant

    if bench.model_dir is None:
        raise RuntimeError(f"no model folder to train from: {bench.model_dir_problem}")
    label = "uncached" if mini_batch_size is None else f"cached{mini_batch_size}"
    config = parse_config(train_config(bench, mini_batch_size), source=f"bench/gpu.py ({label})")
    folder = bench.workdir / f"train-{label}"
    seconds, _ = timed(bench, lambda: train_variant(config, "full", None, folder))
    with (folder / "training_log.csv").open(newline="") as f:
        log = list(csv.DictReader(f))
    shutil.rmtree(folder, ignore_errors=True)
    if len(log) != bench.args.train_steps or not all(math.isfinite(float(r["loss"])) for r in log):
        raise RuntimeError(f"expected {bench.args.train_steps} logged steps with finite losses, got {log}")
    row.rate, row.rate_unit = float(log[-1]["samples_per_second"]), "triples/s"
    row.seconds, row.unit = bench.shape.batch_size / row.rate, "s/step"
    losses = " ".join(f"{float(r['loss']):.3f}" for r in log)
    row.note = f"step {log[-1]['step']} of {len(log)} timed; losses {losses}; load + train {seconds:.0f} s"


# ---------------------------------------------------------------------------------------- running
def run_part(bench: Bench, row: Row, fn, oom_is_result: bool = False) -> Row:
    """Run one part into `row`; a failure is printed (traceback to stderr) and recorded, never raised."""
    import torch

    row.start_gib = bench.meter.reset()
    bench.progress(f"{row.part} ...")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs: stdout keeps the table
            fn()
        row.peak_gib = bench.meter.peak_gib()
    except Exception as error:  # noqa: BLE001 - every part's failure is reported, then the next part runs
        row.peak_gib = bench.meter.peak_gib()
        out_of_memory = isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()
        row.status = "out of memory" if out_of_memory and oom_is_result else "failed"
        row.note = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        if row.status == "failed":
            traceback.print_exc()
    bench.progress(format_row(row))
    return row


def format_row(row: Row) -> str:
    if row.status == "skipped":
        return f"{row.part:<30} {row.note}"
    time_text = f"{row.seconds:9.4g} {row.unit:<7}" if row.seconds is not None else f"{'-':>9} {'':<7}"
    rate_text = f"{row.rate:10.2f} {row.rate_unit:<10}" if row.rate is not None else f"{'-':>10} {'':<10}"
    peak_text = f"{row.peak_gib:8.2f} GiB" if row.peak_gib is not None else f"{'-':>8} GiB"
    start_text = f"(from {row.start_gib:.2f})" if row.start_gib is not None else ""
    status = "" if row.status == "ok" else ("FAILED: " if row.status == "failed" else "OUT OF MEMORY: ")
    return f"{row.part:<30} {time_text} {rate_text} {peak_text} {start_text:<14} {status}{row.note}"


def ratio_lines(rows: dict[str, Row], bench: Bench) -> list[str]:
    """Ratios of parts measured in this run, where both sides have figures."""
    lines = []
    full, pruned = rows.get("encode_full"), rows.get("encode_pruned")
    if full and pruned and full.rate and pruned.rate:
        ideal = bench.shape.model["num_hidden_layers"] / bench.args.pruned_layers
        lines.append(
            f"encode, {pruned.part.split(', ')[1]} against {full.part.split(', ')[1]}: "
            f"{pruned.rate / full.rate:.2f}x the texts/s (ideal {ideal:.1f}x)"
        )
    cached, uncached = rows.get("train_cached"), rows.get("train_uncached")
    if cached and uncached and cached.seconds and uncached.seconds:
        lines.append(
            f"training step, cached against uncached loss: {cached.seconds / uncached.seconds:.2f}x the time, "
            f"{cached.peak_gib / uncached.peak_gib:.2f}x the peak memory"
        )
    elif cached and cached.seconds and uncached and uncached.status == "out of memory":
        lines.append(
            f"training step: the uncached loss runs out of memory, the cached one peaks at {cached.peak_gib:.2f} GiB"
        )
    return lines


def run_all(bench: Bench) -> dict[str, Row]:
    args, shape = bench.args, bench.shape
    rows: dict[str, Row] = {}
    layers = shape.model["num_hidden_layers"]
    if "layerwise" in args.parts:
        rows["layerwise"] = Row(f"layerwise loss, {layers} layers")
        run_part(bench, rows["layerwise"], lambda: part_layerwise(bench, rows["layerwise"]))
    if "encode" in args.parts:
        rows["encode_full"] = Row(f"encode, {layers} layers")
        run_part(bench, rows["encode_full"], lambda: part_encode(bench, rows["encode_full"], None))
        rows["encode_pruned"] = Row(f"encode, {args.pruned_layers} layers")
        run_part(
            bench,
            rows["encode_pruned"],
            lambda: part_encode(bench, rows["encode_pruned"], args.pruned_layers),
        )
    bench.encoder = None  # training loads its own copy from the folder
    if "train" in args.parts:
        cached = Row(f"train, cached loss (mini {args.mini_batch_size})")
        missing = cached_loss_missing()
        if missing:
            cached.status, cached.note = "skipped", missing
            bench.progress(format_row(cached))
            rows["train_cached"] = cached
        else:
            rows["train_cached"] = run_part(
                bench, cached, lambda: part_train(bench, cached, args.mini_batch_size)
            )
        # last: the part most likely to run out of memory
        rows["train_uncached"] = Row("train, uncached loss")
        run_part(
            bench,
            rows["train_uncached"],
            lambda: part_train(bench, rows["train_uncached"], None),
            oom_is_result=True,
        )
    return rows


def header(bench: Bench) -> str:
    import torch
    import transformers

    shape, device = bench.shape, bench.args.device
    where = (
        torch.cuda.get_device_name(device) if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    dtype = "bfloat16" if device == "cuda" else "float32"
    m = shape.model
    return (
        f"Llama shape: {m['num_hidden_layers']} layers, hidden {m['hidden_size']}, MLP {m['intermediate_size']}, "
        f"heads {m['num_attention_heads']}/{m['num_key_value_heads']}, vocab {m['vocab_size']}; random weights, {dtype} "
        f"on {device} ({where}); torch {torch.__version__}, transformers {transformers.__version__}\n"
        f"batch {shape.batch_size} triples (query, positive, negative) x {shape.max_length} tokens; "
        f"training: LoRA r=16 on every projection, AdamW, gradient checkpointing, {bench.args.train_steps} steps "
        f"(the last one timed); memory: {bench.meter.what}"
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny model (hidden 64, 4 layers), batch 4 x 32 tokens"
    )
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        help="cuda (default; CUDA_VISIBLE_DEVICES picks the GPU) or cpu (default with --smoke)",
    )
    parser.add_argument("--parts", nargs="+", choices=PART_GROUPS, default=list(PART_GROUPS))
    parser.add_argument(
        "--train-steps", type=int, default=2, help="training steps per run; the last is timed"
    )
    parser.add_argument(
        "--mini-batch-size", type=int, help="the cached loss's loss_mini_batch_size (8; smoke 2)"
    )
    parser.add_argument("--pruned-layers", type=int, help="layers kept for the pruned encode (8; smoke 2)")
    parser.add_argument(
        "--workdir", help="scratch folder for the model (16 GB) and data; default a temporary one"
    )
    args = parser.parse_args(argv)
    shape = SMOKE if args.smoke else PAPER
    args.device = args.device or ("cpu" if args.smoke else "cuda")
    if args.device == "cpu" and not args.smoke:
        parser.error("--device cpu runs an 8B model on a CPU for hours; add --smoke for the tiny model")
    for name in ("train_steps", "mini_batch_size", "pruned_layers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: give at least 1")
    if args.workdir is not None and not Path(args.workdir).is_dir():
        parser.error(f"--workdir {args.workdir}: no such folder")
    args.mini_batch_size = shape.mini_batch_size if args.mini_batch_size is None else args.mini_batch_size
    args.pruned_layers = shape.pruned_layers if args.pruned_layers is None else args.pruned_layers
    args.shape = shape
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the hub; the GPU machine has no network
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.device == "cuda":
        # one GPU: with several visible the Trainer would split the batch over them (DataParallel)
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "0")
    import torch

    if args.device == "cuda" and torch.cuda.device_count() != 1:
        visible = os.environ["CUDA_VISIBLE_DEVICES"]
        print(
            f"bench/gpu.py: error: --device cuda needs exactly one visible GPU, torch sees {torch.cuda.device_count()} "
            f"(CUDA_VISIBLE_DEVICES={visible!r}); on a machine without one, use --smoke",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="l3prune-bench-gpu-", dir=args.workdir) as workdir:
        bench = Bench(args, args.shape, Path(workdir), PeakMemory(args.device))
        print(header(bench), flush=True)
        print(setup(bench), flush=True)
        rows = run_all(bench)
        print(
            f"\n{'part':<30} {'time':>9} {'':<7} {'rate':>10} {'':<10} {'peak':>12} {'(at start)':<14} note"
        )
        for row in rows.values():
            print(format_row(row))
        for line in ratio_lines(rows, bench):
            print(line)
        print(f"total {time.perf_counter() - bench.started:.0f} s")
    failed = [row.part for row in rows.values() if row.status == "failed"]
    if failed:
        print(f"FAILED parts: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
