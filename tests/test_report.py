"""`l3prune report`: summary.csv and the plot from the variants' mteb.json files."""

import csv
import json

import pytest

from l3prune.cli import main
from l3prune.report import write_report

# variant -> (layers, parameters, LeeSTS, BBCClassification, encode seconds)
VARIANTS = {
    "full": (30, 134_515_008, 0.61234, 0.70011, 40.26),
    "small": (8, 42_000_000, 0.40004, 0.55556, 11.04),
    "large": (20, 92_000_000, 0.59999, 0.68421, 27.55),
}


def write_mteb_json(folder, layers, parameters, sts, classification, seconds):
    folder.mkdir(parents=True)
    tasks = {
        "LeeSTS": {"main_score": sts, "type": "STS"},
        "BBCClassification": {"main_score": classification},
    }
    summary = {
        "num_layers": layers,
        "num_parameters": parameters,
        "average": (sts + classification) / 2,
        "encode_seconds": seconds,
        "tasks": tasks,
    }
    (folder / "mteb.json").write_text(json.dumps(summary))


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results" / "demo"
    for variant, values in VARIANTS.items():
        write_mteb_json(root / variant, *values)
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
    full_parameters = VARIANTS["full"][1]
    for row in rows:
        layers, parameters, sts, classification, seconds = VARIANTS[row["variant"]]
        assert int(row["layers"]) == layers
        assert int(row["parameters"]) == parameters
        assert float(row["percent_removed"]) == round(
            100 * (full_parameters - parameters) / full_parameters, 2
        )
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


def test_variants_option_limits_the_rows(results, tmp_path):
    rows = write_report(results, tmp_path, variants=["full", "small"])
    assert [row["variant"] for row in rows] == ["full", "small"]
    assert [row["variant"] for row in read_csv(tmp_path / "summary.csv")] == ["full", "small"]


def test_without_full_variant_is_an_error(results, tmp_path, capsys):
    assert main(["report", str(results), "--out-dir", str(tmp_path), "--variants", "small", "large"]) == 2
    assert capsys.readouterr().err.strip() == (
        "l3prune: error: no 'full' variant among small, large: the share of parameters removed is relative "
        "to the unpruned 'full' model, so evaluate it too"
    )
    assert not (tmp_path / "summary.csv").exists()


def test_missing_variant_names_the_file(results, tmp_path, capsys):
    assert main(["report", str(results), "--out-dir", str(tmp_path), "--variants", "full", "p25"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"l3prune: error: {results / 'p25' / 'mteb.json'} does not exist; evaluate the variant with `l3prune evaluate`"
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
    del summary["encode_seconds"], summary["num_layers"]
    path.write_text(json.dumps(summary))
    with pytest.raises(
        ValueError, match=r"large/mteb.json lacks num_layers, encode_seconds; is it the summary"
    ):
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
