"""`l3prune report`: summary.csv and the plot from the variants' mteb.json and model_info.json."""

import csv
import json

import pytest

from l3prune.cli import main
from l3prune.report import write_report

BASE_PARAMETERS = 134_515_008
# variant -> (layers, parameters, LeeSTS, BBCClassification, encode seconds)
VARIANTS = {
    "full": (30, BASE_PARAMETERS, 0.61234, 0.70011, 40.26),
    "small": (8, 42_000_000, 0.40004, 0.55556, 11.04),
    "large": (20, 92_000_000, 0.59999, 0.68421, 27.55),
}


def write_variant(folder, layers, parameters, sts, classification, seconds, base=BASE_PARAMETERS):
    """What `l3prune train` and `l3prune evaluate` leave in a variant folder (the fields the report reads)."""
    (folder / "model").mkdir(parents=True)
    info = {"layers_before": 30, "layers_after": layers, "params_before": base, "params_after": parameters}
    (folder / "model" / "model_info.json").write_text(json.dumps(info))
    tasks = {
        "LeeSTS": {"main_score": sts, "type": "STS"},
        "BBCClassification": {"main_score": classification},
    }
    summary = {
        "num_layers": layers,
        "num_parameters": parameters + 81_408 * layers,  # evaluation counts the unmerged LoRA weights too
        "average": (sts + classification) / 2,
        "encode_seconds": seconds,
        "tasks": tasks,
    }
    (folder / "mteb.json").write_text(json.dumps(summary))


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results" / "demo"
    for variant, values in VARIANTS.items():
        write_variant(root / variant, *values)
    return root


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_summary_rows_and_files(results, tmp_path):
    out = tmp_path / "out"
    assert main(["report", str(results), "--out-dir", str(out)]) == 0

    rows = read_csv(out / "summary.csv")
    assert list(rows[0]) == [
        "variant", "layers", "parameters", "percent_removed", "LeeSTS", "BBCClassification", "average", "encode_seconds",
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
    from matplotlib.figure import Figure

    saved = []
    savefig = Figure.savefig

    def record(figure, *args, **kwargs):  # the figure as written, to read its lines back
        saved.append(figure)
        return savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    write_report(results, tmp_path)
    (ax,) = saved[0].axes
    assert ax.get_xlabel() == "parameters (millions)"
    by_size = sorted(VARIANTS.items(), key=lambda item: item[1][1])  # small, large, full
    x = [parameters / 1e6 for _, (_, parameters, *_) in by_size]  # the base model's, without the adapter
    sts = [values[2] for _, values in by_size]
    classification = [values[3] for _, values in by_size]
    average = [(a + b) / 2 for a, b in zip(sts, classification, strict=True)]
    drawn = {line.get_label(): line for line in ax.get_lines() if len(line.get_xdata())}
    line = drawn.pop("average")
    assert (list(line.get_xdata()), list(line.get_ydata())) == (pytest.approx(x), pytest.approx(average))
    assert [list(line.get_xdata()) for line in drawn.values()] == [pytest.approx(x)] * 2
    # one faint line per task, in either order
    assert sorted(list(line.get_ydata()) for line in drawn.values()) == [
        pytest.approx(sts),
        pytest.approx(classification),
    ]
    assert [text.get_text() for text in ax.texts] == [variant for variant, _ in by_size]
    assert [text.xy for text in ax.texts] == [pytest.approx(xy) for xy in zip(x, average, strict=True)]


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
                       r"BBCClassification, LeeSTS: evaluate every variant with the same tasks file"):  # fmt: skip
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
