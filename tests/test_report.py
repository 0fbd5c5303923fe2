"""`l3prune report`: summary.csv and the plot from the variants' mteb.json and model_info.json,
and the untrained baselines' untrained/mteb.json."""

import csv
import json

import pytest

from l3prune.cli import main
from l3prune.report import write_report

BASE_PARAMETERS = 134_515_008
HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
MODEL_FOLDER = f"resources/models/{HUB_NAME}"  # where the workflow's jobs load the base model from
# variant -> (layers, parameters, LeeSTS, BBCClassification, encode seconds)
VARIANTS = {
    "full": (30, BASE_PARAMETERS, 0.61234, 0.70011, 40.26),
    "small": (8, 42_000_000, 0.40004, 0.55556, 11.04),
    "large": (20, 92_000_000, 0.59999, 0.68421, 27.55),
}
# the untrained baselines: variant -> (LeeSTS, BBCClassification); averages 0.64, 0.35, 0.585
UNTRAINED = {"full": (0.60, 0.68), "small": (0.30, 0.40), "large": (0.55, 0.62)}


def mteb_summary(layers, parameters, sts, classification, seconds, max_length=512):
    """The fields of `l3prune evaluate`'s mteb.json that the report reads."""
    tasks = {
        "LeeSTS": {"main_score": sts, "type": "STS"},
        "BBCClassification": {"main_score": classification},
    }
    return {
        "base_model": MODEL_FOLDER,
        "num_layers": layers,
        "num_parameters": parameters,
        "average": (sts + classification) / 2,
        "encode_seconds": seconds,
        "max_length": max_length,
        "tasks": tasks,
    }


def write_variant(folder, layers, parameters, sts, classification, seconds, base=BASE_PARAMETERS):
    """What `l3prune train` and `l3prune evaluate` leave in a variant folder (the fields the report reads)."""
    (folder / "model").mkdir(parents=True)
    info = {
        "base_model": HUB_NAME,
        "layers_before": 30,
        "layers_after": layers,
        "params_before": base,
        "params_after": parameters,
    }
    (folder / "model" / "model_info.json").write_text(json.dumps(info))
    # evaluation counts the unmerged LoRA weights too
    summary = mteb_summary(layers, parameters + 81_408 * layers, sts, classification, seconds)
    (folder / "mteb.json").write_text(json.dumps(summary))


def write_baseline(folder, layers, parameters, sts, classification, **fields):
    """What `l3prune evaluate-untrained CONFIG --variant V --out <variant>/untrained/mteb.json` writes."""
    (folder / "untrained").mkdir(parents=True, exist_ok=True)
    summary = mteb_summary(layers, parameters, sts, classification, 5.0) | fields
    (folder / "untrained" / "mteb.json").write_text(json.dumps(summary))


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results" / "demo"
    for variant, values in VARIANTS.items():
        write_variant(root / variant, *values)
    return root


@pytest.fixture
def with_baselines(results):
    for variant, (sts, classification) in UNTRAINED.items():
        layers, parameters, *_ = VARIANTS[variant]
        write_baseline(results / variant, layers, parameters, sts, classification)
    return results


def saved_figures(monkeypatch):
    """The figures as they are written, to read their lines back."""
    from matplotlib.figure import Figure

    saved = []
    savefig = Figure.savefig

    def record(figure, *args, **kwargs):
        saved.append(figure)
        return savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return saved


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_summary_rows_and_files(results, tmp_path):
    out = tmp_path / "out"
    assert main(["report", str(results), "--out-dir", str(out)]) == 0

    rows = read_csv(out / "summary.csv")
    assert list(rows[0]) == [
        "variant", "layers", "parameters", "percent_removed", "train_steps", "train_seconds", "LeeSTS",
        "BBCClassification", "average", "encode_seconds",
    ]  # fmt: skip
    assert [row["variant"] for row in rows] == ["full", "large", "small"]  # full first, then by size
    for row in rows:
        layers, parameters, sts, classification, seconds = VARIANTS[row["variant"]]
        assert int(row["layers"]) == layers
        assert int(row["parameters"]) == parameters  # the base model's, without the adapter
        removed = 100 * (BASE_PARAMETERS - parameters) / BASE_PARAMETERS
        assert float(row["percent_removed"]) == round(removed, 2)
        assert float(row["LeeSTS"]) == round(sts, 4)
        assert float(row["BBCClassification"]) == round(classification, 4)
        assert float(row["average"]) == round((sts + classification) / 2, 4)
        assert float(row["encode_seconds"]) == round(seconds, 1)
    assert rows[0]["percent_removed"] == "0.0"
    assert float(rows[2]["percent_removed"]) == 68.78  # small: 42.0M of 134.5M parameters kept
    assert (out / "score_vs_parameters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "score_vs_parameters.png",
        "summary.csv",
    ]  # no temp files left


def test_plot_draws_each_variants_parameters_and_scores(results, tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    write_report(results, tmp_path)
    (ax,) = saved[0].axes
    assert ax.get_xlabel() == "parameters (millions)"
    assert ax.get_title() == "L3Prune variants of SmolLM2-135M-Instruct"  # the hub name's last part
    by_size = sorted(VARIANTS.items(), key=lambda item: item[1][1])  # small, large, full
    x = [parameters / 1e6 for _, (_, parameters, *_) in by_size]  # the base model's, without the adapter
    sts = [values[2] for _, values in by_size]
    classification = [values[3] for _, values in by_size]
    average = [(a + b) / 2 for a, b in zip(sts, classification, strict=True)]
    drawn = {line.get_label(): line for line in ax.get_lines()}
    assert sorted(drawn) == ["BBCClassification", "LeeSTS", "trained (average)"]  # no untrained curve
    line = drawn.pop("trained (average)")
    assert (list(line.get_xdata()), list(line.get_ydata())) == (pytest.approx(x), pytest.approx(average))
    assert [list(line.get_xdata()) for line in drawn.values()] == [pytest.approx(x)] * 2
    assert list(drawn["LeeSTS"].get_ydata()) == pytest.approx(sts)
    assert list(drawn["BBCClassification"].get_ydata()) == pytest.approx(classification)
    variant_names = [text for text in ax.texts if text.get_text() in VARIANTS]
    assert [text.get_text() for text in variant_names] == [variant for variant, _ in by_size]
    assert [text.xy for text in variant_names] == [pytest.approx(xy) for xy in zip(x, average, strict=True)]
    # each task's line is named at its end, the largest variant's point
    task_names = {text.get_text(): text.xy for text in ax.texts if text not in variant_names}
    assert task_names == {
        "LeeSTS": pytest.approx((x[-1], sts[-1])),
        "BBCClassification": pytest.approx((x[-1], classification[-1])),
    }


def test_variants_option_limits_the_rows(results, tmp_path):
    rows = write_report(results, tmp_path, variants=["full", "small"])
    assert [row["variant"] for row in rows] == ["full", "small"]
    assert [row["variant"] for row in read_csv(tmp_path / "summary.csv")] == ["full", "small"]


def test_variants_of_different_base_models_are_an_error(results, tmp_path, capsys):
    write_variant(results / "other", 8, 42_000_000, 0.4, 0.5, 11.0, base=7_000_000_000)
    assert main(["report", str(results), "--out-dir", str(tmp_path), "--variants", "full", "other"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"l3prune: error: {results / 'other'} was pruned from a model of 7,000,000,000 parameters, "
        f"{results / 'full'} from one of 134,515,008: report one base model's variants"
    )
    assert not (tmp_path / "summary.csv").exists()


def test_missing_variant_names_the_file(results, tmp_path, capsys):
    assert main(["report", str(results), "--out-dir", str(tmp_path), "--variants", "full", "p25"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"l3prune: error: {results / 'p25' / 'mteb.json'} does not exist; it is written by `l3prune evaluate`"
    )


def test_different_tasks_are_an_error(results, tmp_path):
    path = results / "small" / "mteb.json"
    summary = json.loads(path.read_text())
    del summary["tasks"]["BBCClassification"]
    path.write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"small/mteb.json scores tasks LeeSTS but .*full/mteb.json scores "
                       r"BBCClassification, LeeSTS: evaluate every variant and its untrained baseline with the same tasks file"):  # fmt: skip
        write_report(results, tmp_path)


def test_summary_without_a_needed_field_is_an_error(results, tmp_path):
    path = results / "large" / "mteb.json"
    summary = json.loads(path.read_text())
    del summary["encode_seconds"], summary["average"]
    path.write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"large/mteb.json lacks average, encode_seconds; is it the file written by `l3prune evaluate`\?"):  # fmt: skip
        write_report(results, tmp_path)


def test_untrained_variant_names_the_missing_model_info(results, tmp_path):
    (results / "small" / "model" / "model_info.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"small/model/model_info.json does not exist; it is written by `l3prune train`$"):  # fmt: skip
        write_report(results, tmp_path)


def test_existing_summary_survives_a_failed_report(results, tmp_path):
    write_report(results, tmp_path)
    before = (tmp_path / "summary.csv").read_text()
    (results / "small" / "mteb.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"small/mteb.json:1:2: not valid JSON"):
        write_report(results, tmp_path)
    assert (tmp_path / "summary.csv").read_text() == before


def test_empty_results_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no evaluated variant in .* \(no .*/<variant>/mteb.json\)"):
        write_report(tmp_path, tmp_path)


# points = 100 x (a - b) of the averages, worked out by hand from UNTRAINED and VARIANTS:
# untrained averages full 0.64, large 0.585, small 0.35; trained 0.656225, 0.6421, 0.4778
EXPECTED_BASELINE_COLUMNS = {
    "full": {"untrained_average": "0.64", "points_lost_by_cutting": "0.0", "points_recovered_by_training": "1.62"},
    "large": {"untrained_average": "0.585", "points_lost_by_cutting": "5.5", "points_recovered_by_training": "5.71"},
    "small": {"untrained_average": "0.35", "points_lost_by_cutting": "29.0", "points_recovered_by_training": "12.78"},
}  # fmt: skip


def test_baselines_give_points_lost_by_cutting_and_recovered_by_training(with_baselines, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["report", str(with_baselines), "--out-dir", str(out)]) == 0

    rows = read_csv(out / "summary.csv")
    assert list(rows[0]) == [
        "variant", "layers", "parameters", "percent_removed", "train_steps", "train_seconds", "LeeSTS",
        "BBCClassification", "average", "untrained_average", "points_lost_by_cutting", "points_recovered_by_training", "encode_seconds",
    ]  # fmt: skip
    assert {row["variant"]: {key: row[key] for key in EXPECTED_BASELINE_COLUMNS["full"]} for row in rows} == (
        EXPECTED_BASELINE_COLUMNS
    )
    assert [(row["layers"], row["parameters"], row["average"]) for row in rows] == [
        ("30", str(BASE_PARAMETERS), "0.6562"), ("20", "92000000", "0.6421"), ("8", "42000000", "0.4778"),
    ]  # fmt: skip  # the trained variants' own, as without baselines
    printed = capsys.readouterr().out.splitlines()  # the same table, tab-separated
    assert printed[0].split("\t")[-4:-1] == [
        "untrained_average",
        "points_lost_by_cutting",
        "points_recovered_by_training",
    ]
    assert [line.split("\t")[-3:-1] for line in printed[1:]] == [
        ["0.0", "1.62"],
        ["5.5", "5.71"],
        ["29.0", "12.78"],
    ]


def test_plot_draws_the_untrained_and_the_trained_curve(with_baselines, tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    write_report(with_baselines, tmp_path)
    (ax,) = saved[0].axes
    drawn = {line.get_label(): line for line in ax.get_lines()}
    assert sorted(drawn) == ["BBCClassification", "LeeSTS", "trained (average)", "untrained (average)"]
    x = [42.0, 92.0, BASE_PARAMETERS / 1e6]  # small, large, full: both curves at the trained sizes
    untrained, trained = drawn["untrained (average)"], drawn["trained (average)"]
    assert list(untrained.get_xdata()) == pytest.approx(x)
    assert list(untrained.get_ydata()) == pytest.approx([0.35, 0.585, 0.64])
    assert list(trained.get_xdata()) == pytest.approx(x)
    assert list(trained.get_ydata()) == pytest.approx([0.4778, 0.6421, 0.656225])
    assert list(drawn["LeeSTS"].get_ydata()) == pytest.approx(
        [0.40004, 0.59999, 0.61234]
    )  # the trained scores
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["each task, trained", "untrained (average)", "trained (average)"]


def test_a_variant_without_a_baseline_has_empty_baseline_cells(with_baselines, tmp_path):
    (with_baselines / "large" / "untrained" / "mteb.json").unlink()
    rows = {row["variant"]: row for row in read_csv(write_and_return(with_baselines, tmp_path))}
    assert [rows["large"][key] for key in EXPECTED_BASELINE_COLUMNS["large"]] == ["", "", ""]
    assert rows["small"]["points_lost_by_cutting"] == "29.0"  # the others still compare with untrained full
    (with_baselines / "full" / "untrained" / "mteb.json").unlink()
    rows = {row["variant"]: row for row in read_csv(write_and_return(with_baselines, tmp_path))}
    assert [rows["small"][key] for key in EXPECTED_BASELINE_COLUMNS["small"]] == ["0.35", "", "12.78"]


def write_and_return(results, out):
    write_report(results, out)
    return out / "summary.csv"


def test_a_baseline_alone_is_a_row_sized_by_its_own_mteb_json(with_baselines, tmp_path, monkeypatch):
    """train_full: false still evaluates untrained `full`, the reference for what cutting costs."""
    (with_baselines / "full" / "mteb.json").unlink()
    for path in (with_baselines / "full" / "model").iterdir():
        path.unlink()
    saved = saved_figures(monkeypatch)
    rows = read_csv(write_and_return(with_baselines, tmp_path))
    assert rows[0] == {
        "variant": "full", "layers": "30", "parameters": str(BASE_PARAMETERS), "percent_removed": "0.0",
        "train_steps": "", "train_seconds": "", "LeeSTS": "", "BBCClassification": "", "average": "", "untrained_average": "0.64",
        "points_lost_by_cutting": "0.0", "points_recovered_by_training": "", "encode_seconds": "",
    }  # fmt: skip
    assert rows[2]["points_lost_by_cutting"] == "29.0"
    (ax,) = saved[0].axes
    drawn = {line.get_label(): line for line in ax.get_lines()}
    assert list(drawn["trained (average)"].get_xdata()) == pytest.approx([42.0, 92.0])
    assert list(drawn["untrained (average)"].get_ydata()) == pytest.approx([0.35, 0.585, 0.64])
    assert ax.get_title() == "L3Prune variants of SmolLM2-135M-Instruct"


def test_no_untrained_option_leaves_the_baselines_out(with_baselines, tmp_path):
    write_baseline(with_baselines / "small", 8, 1, 0.3, 0.4, tasks={})  # stale: would be an error if read
    assert main(["report", str(with_baselines), "--out-dir", str(tmp_path), "--no-untrained"]) == 0
    assert list(read_csv(tmp_path / "summary.csv")[0])[-2:] == ["average", "encode_seconds"]


def test_baseline_with_other_tasks_is_an_error(with_baselines, tmp_path, capsys):
    write_baseline(
        with_baselines / "large", 20, 92_000_000, 0.55, 0.62, tasks={"LeeSTS": {"main_score": 0.55}}
    )
    assert main(["report", str(with_baselines), "--out-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"l3prune: error: {with_baselines / 'large' / 'untrained' / 'mteb.json'} scores tasks LeeSTS but "
        f"{with_baselines / 'full' / 'mteb.json'} scores BBCClassification, LeeSTS: evaluate every variant and "
        "its untrained baseline with the same tasks file"
    )
    assert not (tmp_path / "summary.csv").exists()


def test_baseline_cut_to_another_layer_count_is_an_error(with_baselines, tmp_path):
    write_baseline(with_baselines / "small", 9, 42_000_000, 0.3, 0.4)
    with pytest.raises(ValueError, match=r"small/untrained/mteb.json evaluated 9 layers but the trained variant "
                       r"keeps 8: evaluate the baseline with `l3prune evaluate-untrained CONFIG --variant small`$"):  # fmt: skip
        write_report(with_baselines, tmp_path)


def test_baseline_at_another_length_is_an_error(with_baselines, tmp_path):
    write_baseline(with_baselines / "small", 8, 42_000_000, 0.3, 0.4, max_length=64)
    with pytest.raises(ValueError, match=r"small/untrained/mteb.json was evaluated at max_length 64 but "
                       r".*small/mteb.json at 512: evaluate both with the same --max-length$"):  # fmt: skip
        write_report(with_baselines, tmp_path)


def test_model_name_option_and_the_name_a_downloaded_folder_records(results, tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    assert main(["report", str(results), "--out-dir", str(tmp_path), "--model-name", "SmolLM2 (demo)"]) == 0
    assert saved[-1].axes[0].get_title() == "L3Prune variants of SmolLM2 (demo)"
    # a variant trained from a local folder: the hub name the folder records, not the folder's name
    folder = tmp_path / "models" / "smollm"
    folder.mkdir(parents=True)
    (folder / "l3prune_source.json").write_text(json.dumps({"repo_id": HUB_NAME, "revision": "main"}))
    for variant in VARIANTS:
        info_path = results / variant / "model" / "model_info.json"
        info_path.write_text(json.dumps(json.loads(info_path.read_text()) | {"base_model": str(folder)}))
    write_report(results, tmp_path)
    assert saved[-1].axes[0].get_title() == "L3Prune variants of SmolLM2-135M-Instruct"


def test_task_names_do_not_overlap(tmp_path, monkeypatch):
    """Tasks scoring alike end at one point; their names are stacked apart, each near its line."""
    root = tmp_path / "results"
    names = [f"Task{i}" for i in range(20)]
    for variant, layers, parameters in (("full", 30, BASE_PARAMETERS), ("small", 8, 42_000_000)):
        write_variant(root / variant, layers, parameters, 0.5, 0.5, 1.0)
        path = root / variant / "mteb.json"
        summary = json.loads(path.read_text())
        spread = 1e-4 if variant == "full" else 0.02  # 0.5 to 0.5019: one point at full's size
        summary["tasks"] = {name: {"main_score": 0.5 - i * spread} for i, name in enumerate(names)}
        path.write_text(json.dumps(summary))
    saved = saved_figures(monkeypatch)
    write_report(root, tmp_path)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = saved[0]
    renderer = FigureCanvasAgg(figure).get_renderer()  # the figure was closed after saving
    (ax,) = figure.axes
    boxes = [text.get_window_extent(renderer) for text in ax.texts if text.get_text() in names]
    assert len(boxes) == len(names)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert all(figure.bbox.contains(box.x1, box.y0) and figure.bbox.contains(box.x1, box.y1) for box in boxes)


def test_loss_curve_is_titled_with_the_models_name(tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    folder = tmp_path / "resources" / "models" / "meta-llama" / "Meta-Llama-3-8B-Instruct"
    loss = tmp_path / "loss.json"
    for model, title in (
        ("meta-llama/Meta-Llama-3-8B-Instruct", "L3Prune on Meta-Llama-3-8B-Instruct (6 layers)"),
        (str(folder), "L3Prune on Meta-Llama-3-8B-Instruct (6 layers)"),
    ):
        loss.write_text(json.dumps({"model": model, "losses": [3.0, 2.0, 2.5, 2.2, 1.0, 1.5]}))
        out = ["--out", str(tmp_path / "points.json"), "--plot", str(tmp_path / "curve.png")]
        assert main(["prune-points", str(loss), *out]) == 0
        (ax,) = saved[-1].axes
        assert ax.get_title() == title
        marked = [(line.get_label(), list(line.get_offsets()[0])) for line in ax.collections]
        assert marked == [("small: 2 layers", [2.0, 2.0]), ("large: 5 layers", [5.0, 1.0])]
