"""Bad input, one table: each row is a mistake a user makes in a training config, a prune value, a
model name, a data file, a tasks file or the workflow config.

Every row must fail with exit code 2 (`l3prune`, run in-process) or non-zero (`snakemake -n`, in a
subprocess), on ONE error line that names where the mistake is (the key or file:line), the bad value and
what is accepted (the layer counts or choices): the row lists those facts, not the wording around
them. It shows no traceback and must leave nothing
behind: the output folder given to the command holds no file or folder afterwards (so no
`*.tmp-*`, `*.partial` or `.incomplete` either).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
import yaml

from l3prune.cli import main
from l3prune.config import seed_keys

REPO = Path(__file__).resolve().parents[1]
ERROR = "l3prune: error: "
SEED_KEYS = ", ".join(sorted(seed_keys()))
E5_FILES = (
    "allnli.jsonl, dureader.jsonl, eli5_question_answer.jsonl, fever.jsonl, hotpot_qa.jsonl, miracl.jsonl, "
    "mrtydi.jsonl, msmarco_passage.jsonl, msmarco_document.jsonl, nq.jsonl, quora_duplicates.jsonl, squad.jsonl, "
    "t2ranking.jsonl, trivia_qa.jsonl"
)
JSONL_EXPECTED = (
    "expected a JSON object with string 'query' and 'positive' and optional 'negative', 'instruction'"
)


@dataclass
class Inputs:
    """The files of one row, in their own folder (`folder`); `out` is the output folder, apart from them."""

    folder: Path
    out: Path
    model: Path
    data: Path  # 4 good training pairs: one batch of 4
    # the files a row may write, named in messages as {config}, {tasks}, ...
    config: Path = field(init=False)
    tasks: Path = field(init=False)
    loss: Path = field(init=False)
    points: Path = field(init=False)
    bad_data: Path = field(init=False)
    sts: Path = field(init=False)

    def __post_init__(self):
        names = ("train.json", "tasks.yaml", "loss.json", "points.json", "bad.jsonl", "sts.jsonl")
        self.config, self.tasks, self.loss, self.points, self.bad_data, self.sts = (
            self.folder / n for n in names
        )

    def train_config(self, **keys) -> str:
        """Write a working training config with `keys` changed (None removes a key); return its path."""
        config = dict(
            model_name_or_path=str(self.model),
            dataset_name="jsonl",
            dataset_file_path=str(self.data),
            torch_dtype="float32",
            max_seq_length=32,
            per_device_train_batch_size=4,
            lora_r=4,
            stop_after_n_steps=1,
            save_steps=1,
            disable_tqdm=True,
        )
        config.update(keys)
        self.config.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
        return str(self.config)

    def text(self, path: Path, text: str) -> str:
        path.write_text(text)
        return str(path)

    def tasks_file(self, tasks: dict) -> str:
        return self.text(self.tasks, yaml.safe_dump(tasks))

    def sts_file(self) -> str:
        rows = ({"sentence1": f"the model {i}", "sentence2": f"a text {i}", "score": i} for i in range(4))
        return self.text(self.sts, "".join(json.dumps(row) + "\n" for row in rows))

    def malformed_data(self) -> str:
        """Four training pairs, line 3's positive a number: all four are one batch, read at step 1."""
        lines = [json.dumps({"query": f"q{i}", "positive": f"p{i}"}) for i in range(4)]
        lines[2] = '{"query": "q2", "positive": 3}'
        return self.text(self.bad_data, "\n".join(lines) + "\n")

    def train(self, *options: str, **keys) -> list[str]:
        """`l3prune train` of a config with `keys` changed: one variant (`full` unless `options` name
        another) into out/model, as the workflow calls it."""
        options = options or ("--variant", "full")
        return ["train", self.train_config(**keys), *options, "--output-dir", str(self.out / "model")]

    def evaluate(self, tasks: dict, *options: str, model: str | None = None) -> list[str]:
        return [
            "evaluate", model or str(self.model), "--tasks", self.tasks_file(tasks), *options,
            "--out", str(self.out / "mteb.json"),
        ]  # fmt: skip

    def prune_points(self, curve: str) -> list[str]:
        """`l3prune prune-points` of a loss file holding `curve`, writing points and plot into out/."""
        loss, out = self.text(self.loss, curve), self.out
        return ["prune-points", loss, "--out", str(out / "points.json"), "--plot", str(out / "curve.png")]

    def layerwise_loss(self, *options: str, **keys) -> list[str]:
        """`l3prune layerwise-loss` of a config with `keys` changed, one batch of 4 unless `options`
        say otherwise (the last of a repeated option counts)."""
        return [
            "layerwise-loss", self.train_config(**keys), "--out", str(self.out / "loss.json"),
            "--batch-size", "4", "--num-batches", "1", *options,
        ]  # fmt: skip

    def train_with_points(self, **points) -> list[str]:
        """`l3prune train --variant small` with a prune points file holding `points`."""
        self.text(self.points, json.dumps(points))
        return self.train("--variant", "small", "--prune-points", str(self.points), autoprune="small")

    def local_task(self, **entry) -> dict:
        return {"local_tasks": [{"name": "MySTS", "type": "STS", "path": self.sts_file(), **entry}]}


@dataclass(frozen=True)
class Case:
    id: str
    command: Callable[[Inputs], list[str] | dict]  # argv of `l3prune`, or a workflow config override
    # what the message must say, each a literal part of it: the key or file, the bad value and what
    # is accepted; {config}, {model}, ... stand for the row's paths (Inputs)
    facts: tuple[str, ...]

    @property
    def workflow(self) -> bool:
        return self.id.startswith("workflow")


CASES = [
    # ---------------------------------------------------------------- training config: keys and types
    Case(
        "config: misspelt key",
        lambda i: i.train(lora_rank=4),
        (
            "{config}",
            "'lora_rank'",
            "did you mean 'lora_r'",
            SEED_KEYS,
            "any transformers TrainingArguments field",
        ),
    ),
    Case(
        "config: required key missing",
        lambda i: i.train(dataset_file_path=None),
        ("{config}", "'dataset_file_path'", "missing"),
    ),
    Case(
        "config: seed key of the wrong type",
        lambda i: i.train(lora_r="8"),
        ("{config}", "'lora_r'", "'8'", "'integer'"),
    ),
    Case(
        "config: Trainer key of the wrong type",
        lambda i: i.train(learning_rate="fast"),
        ("{config}", "'learning_rate'", "'fast'", "'number'"),
    ),
    Case(
        "config: Trainer key's value not among its choices",
        lambda i: i.train(lr_scheduler_type="wobbly"),
        ("{config}", "wobbly", "SchedulerType", "['linear', 'cosine', "),
    ),
    Case(
        "config: not JSON",
        lambda i: ["train", i.text(i.config, '{"lora_r": 8,}')],
        ("{config}:1:14:", "not valid JSON", "Expecting property name"),
    ),
    Case(
        "config: a list, not an object",
        lambda i: ["train", i.text(i.config, "[1, 2]")],
        ("{config}", "a JSON object of keys", "not a list"),
    ),
    Case(
        "config: file missing",
        lambda i: ["train", str(i.config), "--output-dir", str(i.out / "model")],
        ("training config {config}", "does not exist"),
    ),
    # ---------------------------------------------------------------- prune values and variants
    Case(
        "percent_prune: 1.5, neither a fraction nor a layer count",
        lambda i: i.train(percent_prune=[1.5]),
        ("{config}", "'percent_prune'", "1.5", "a fraction in (0, 1) to drop", "a whole layer count to keep"),
    ),
    Case(
        "percent_prune: 0",
        lambda i: i.train(percent_prune=[0]),
        ("{config}", "'percent_prune[0]'", "0 is less than or equal to the minimum of 0"),
    ),
    Case(
        "percent_prune: a number, not a list",
        lambda i: i.train(percent_prune=0.25),
        ("{config}", "'percent_prune'", "0.25", "'array'"),
    ),
    Case(
        "percent_prune: one variant twice",
        lambda i: i.train(percent_prune=[0.5, 0.50, 2]),
        ("{config}", "'percent_prune'", "p50", "more than once"),
    ),
    Case(
        "prune: --variant l99 keeps more layers than the model has",
        lambda i: i.train("--variant", "l99", percent_prune=[99]),
        (
            "prune value 99",
            "4 layers",
            "a fraction strictly between 0 and 1",
            "a whole layer count from 1 to 4",
        ),
    ),
    Case(
        "prune: --variant p90 keeps no layer",
        lambda i: i.train("--variant", "p90", percent_prune=[0.9]),
        ("fraction 0.9", "of 4 layers keeps none", "at most 0.75"),
    ),
    Case(
        "autoprune: unknown mode",
        lambda i: i.train(autoprune="medium"),
        ("{config}", "'autoprune'", "'medium'", "['small', 'large', 'small+large', 'all', None]"),
    ),
    Case(
        "pooling_mode: unknown",
        lambda i: i.train(pooling_mode="max"),
        (
            "{config}",
            "'pooling_mode'",
            "'max'",
            "['mean', 'weighted_mean', 'eos_token', 'last_token', 'bos_token']",
        ),
    ),
    Case(
        "--variant: not one of the config's",
        lambda i: i.train("--variant", "p30", percent_prune=[0.25]),
        ("{config}", "'p30'", "this config has: full, p25"),
    ),
    Case(
        "--prune-points: no num_layers",
        lambda i: i.train_with_points(small=1, large=3),
        ("{points}", "'num_layers'", "a positive layer count", "got None"),
    ),
    Case(
        "--prune-points: small above large",
        lambda i: i.train_with_points(small=3, large=2, num_layers=4),
        ("{points}", "small <= large <= num_layers", "small=3, large=2, num_layers=4"),
    ),
    Case(
        "--prune-points: of another model",
        lambda i: i.train_with_points(small=7, large=20, num_layers=32),
        ("a 32-layer model", "{model} has 4 layers"),
    ),
    Case(
        "prune-points: a curve of one layer",
        lambda i: i.prune_points('{"losses": [1.0]}'),
        ("{loss}", "over 1 layer(s)", "at least 2 layers"),
    ),
    Case(
        "prune-points: losses that are not numbers",
        lambda i: i.prune_points('{"losses": [1.0, "low"]}'),
        ("{loss}", "'losses' list of numbers", "`l3prune layerwise-loss` output"),
    ),
    Case(
        "prune-points: not JSON",
        lambda i: i.prune_points('{"losses": [1.0, 0.5]'),
        ("{loss}:1:22:", "not valid JSON", "Expecting ',' delimiter"),
    ),
    # ---------------------------------------------------------------- model names
    Case(
        "model: folder missing",
        lambda i: i.train(model_name_or_path=str(i.folder / "no-model")),
        ("'{folder}/no-model'", "no such folder", "a model hub name ('name' or 'namespace/name')"),
    ),
    Case(
        "model: hub name, hub offline (train)",
        lambda i: i.train(model_name_or_path="meta-llama/x"),
        ("'meta-llama/x'", "not in the hub cache", "HF_HUB_OFFLINE=1", "give a model folder"),
    ),
    Case(
        "model: hub name, hub offline (evaluate)",
        lambda i: i.evaluate(i.local_task(), model="meta-llama/x"),
        ("'meta-llama/x'", "not in the hub cache", "HF_HUB_OFFLINE=1", "give a model folder"),
    ),
    Case(
        "model: evaluate --num-layers beyond the model",
        lambda i: i.evaluate(i.local_task(), "--num-layers", "9"),
        ("num_layers=9", "a layer count from 1 to 4", "{model}"),
    ),
    # ---------------------------------------------------------------- data files
    Case(
        "data: jsonl file missing",
        lambda i: i.train(dataset_file_path=str(i.folder / "none.jsonl")),
        ("{folder}/none.jsonl", "does not exist", "a .jsonl file or a directory of them"),
    ),
    Case(
        "data: E5 folder missing",
        lambda i: i.train(dataset_name="E5", dataset_file_path=str(i.folder / "echo-data")),
        ("{folder}/echo-data", "does not exist", E5_FILES),
    ),
    Case(
        "data: Wiki1M file missing",
        lambda i: i.train(dataset_name="Wiki1M", dataset_file_path=str(i.folder / "wiki1m.txt")),
        ("{folder}/wiki1m.txt", "does not exist", "wiki1m_for_simcse.txt"),
    ),
    Case(
        "data: dataset_name unknown",
        lambda i: i.train(dataset_name="E6"),
        ("{config}", "'dataset_name'", "'E6'", "['E5', 'Wiki1M', 'jsonl']"),
    ),
    Case(
        "data: malformed jsonl line (train)",
        lambda i: i.train(dataset_file_path=i.malformed_data()),
        ("{bad_data}:3:", "'positive' is not a string", JSONL_EXPECTED),
    ),
    Case(
        "data: malformed jsonl line (layerwise-loss)",
        lambda i: i.layerwise_loss(dataset_file_path=i.malformed_data()),
        ("{bad_data}:3:", "'positive' is not a string", JSONL_EXPECTED),
    ),
    # ---------------------------------------------------------------- devices and counts (checked before loading)
    Case(
        "device: cuda without CUDA (evaluate)",
        lambda i: i.evaluate(i.local_task(), "--device", "cuda"),
        ("--device cuda:", "CUDA is not available", "(accepted: cpu)"),
    ),
    Case(
        "device: cuda:1 without CUDA (layerwise-loss)",
        lambda i: i.layerwise_loss("--device", "cuda:1"),
        ("--device cuda:1:", "CUDA is not available", "(accepted: cpu)"),
    ),
    Case(
        "device: mps without MPS (layerwise-loss)",
        lambda i: i.layerwise_loss("--device", "mps"),
        ("--device mps:", "MPS is not available", "(accepted: cpu)"),
    ),
    Case(
        "device: malformed (evaluate)",
        lambda i: i.evaluate(i.local_task(), "--device", "cuda:x"),
        ("--device cuda:x:", "not a device name", "(accepted: cpu)"),
    ),
    Case(
        "device: a torch device type l3prune does not run on (layerwise-loss)",
        lambda i: i.layerwise_loss("--device", "meta"),
        ("--device meta:", "cpu, cuda or mps", "(accepted: cpu)"),
    ),
    Case(
        "count: evaluate --batch-size 0",
        lambda i: i.evaluate(i.local_task(), "--batch-size", "0"),
        ("--batch-size", "at least 1", "got 0"),
    ),
    Case(
        "count: layerwise-loss --batch-size 0, not the config's",
        lambda i: i.layerwise_loss("--batch-size", "0"),
        ("--batch-size", "at least 1", "got 0"),
    ),
    Case(
        "count: layerwise-loss --num-batches 0, not the config's",
        lambda i: i.layerwise_loss("--num-batches", "0"),
        ("--num-batches", "at least 1", "got 0"),
    ),
    Case(
        "count: layerwise-loss --num-batches -1",
        lambda i: i.layerwise_loss("--num-batches", "-1"),
        ("--num-batches", "at least 1", "got -1"),
    ),
    # ---------------------------------------------------------------- tasks file: task names and files
    Case(
        "tasks: unknown MTEB task",
        lambda i: i.evaluate({"tasks": ["STS99"]}),
        ("{tasks}", "unknown MTEB task 'STS99'", "Did you mean: 'STSB'"),
    ),
    Case(
        "tasks: unknown local task type",
        lambda i: i.evaluate(i.local_task(type="Regression")),
        (
            "{tasks}",
            "local_tasks[0].type",
            "'Regression'",
            "['STS', 'Retrieval', 'Classification', 'Clustering', 'PairClassification']",
        ),
    ),
    Case(
        "tasks: local task file missing",
        lambda i: i.evaluate(i.local_task(path=str(i.folder / "none.jsonl"))),
        ("{tasks}", "local_tasks[0] (MySTS)", "{folder}/none.jsonl", "not found"),
    ),
    Case(
        "tasks: misspelt key",
        lambda i: i.evaluate({"task": ["STS12"]}),
        (
            "{tasks}",
            "'task' was unexpected",
            "allowed keys: tasks, benchmark, local_tasks, instructions, batch_size",
        ),
    ),
    Case(
        "tasks: file missing",
        lambda i: ["evaluate", str(i.model), "--tasks", str(i.tasks), "--out", str(i.out / "mteb.json")],
        ("tasks file {tasks}", "not found"),
    ),
    # ---------------------------------------------------------------- workflow config (snakemake -n)
    Case(
        "workflow: misspelt top-level key",
        lambda i: {"modles": {}},
        ("config:", "'modles'", "['run', 'models', ", "'downloads', 'demo_assets']"),
    ),
    Case(
        "workflow: threads not an integer",
        lambda i: {"models": {"demo": {"resources": {"train": {"threads": "two"}}}}},
        ("'models.demo.resources.train.threads'", "'two'", "'integer'"),
    ),
    Case(
        "workflow: run names a model not defined",
        lambda i: {"run": ["demo", "lama3"]},
        ("config key 'run'", "lama3 not defined", "(defined: demo, llama3, mistral, qwen2, phi3)"),
    ),
]


@pytest.fixture
def inputs(tiny_llama, tmp_path, monkeypatch) -> Inputs:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
    # every row runs as on a machine without a GPU, whatever this one has: the device rows name
    # what is accepted, and a row that got past its check must not start work on a GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    folder = tmp_path / "in"
    folder.mkdir()
    data = folder / "pairs.jsonl"
    data.write_text(
        "".join(
            json.dumps({"query": f"q{i}", "positive": f"p{i}", "negative": f"n{i}"}) + "\n" for i in range(4)
        )
    )
    return Inputs(folder=folder, out=tmp_path / "out", model=tiny_llama, data=data)


def facts(case: Case, inputs: Inputs) -> list[str]:
    """The row's facts with its paths filled in."""
    return [fact.format(**vars(inputs)) for fact in case.facts]


def missing_facts(case: Case, inputs: Inputs, message: str) -> list[str]:
    return [fact for fact in facts(case, inputs) if fact not in message]


def run_cli(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "Traceback" not in err
    errors = [line for line in lines if line.startswith(ERROR)]
    assert errors == lines[-1:], err  # the last line is the error, and no other line is one
    return lines[-1].removeprefix(ERROR)


def run_snakemake(override: dict, config_file: Path, workdir: Path) -> str:
    """`snakemake -n` in an empty working folder with `override` merged over config/config.yaml; its output."""
    config_file.write_text(yaml.safe_dump(override))
    workdir.mkdir()
    (workdir / "config").symlink_to(REPO / "config")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"),
         "--configfile", str(config_file)],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stdout
    return result.stdout


def test_the_table_covers_every_kind_of_bad_input():
    kinds = {case.id.split(":")[0] for case in CASES}
    assert {"config", "percent_prune", "prune", "model", "data", "tasks", "workflow"} <= kinds
    assert len(CASES) >= 24 and len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_clear_line_and_leaves_nothing(case, inputs, capsys):
    command = case.command(inputs)
    if case.workflow:
        output = run_snakemake(command, inputs.folder / "override.yaml", inputs.out)
        lines = [line for line in output.splitlines() if not missing_facts(case, inputs, line)]
        assert len(lines) == 1, output
        # the working folder holds what the test put there and Snakemake's own records, nothing else
        assert {p.name for p in inputs.out.iterdir()} <= {"config", ".snakemake"}
    else:
        message = run_cli(command, capsys)
        assert missing_facts(case, inputs, message) == [], message
        assert not inputs.out.exists() or list(inputs.out.rglob("*")) == []
