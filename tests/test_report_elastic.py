"""The report's rows of an elastic run (results/<model>/elastic@<depth>/mteb.json): sized by that
depth, costed by the one run, next to the separately trained variants in summary.csv and the plot."""

import json

import pytest
from test_report import BASE_PARAMETERS, VARIANTS, mteb_summary, read_csv, results, saved_figures  # noqa: F401

from l3prune.report import write_report

# depth -> (layers, parameters, LeeSTS, BBCClassification)
DEPTHS = {"small": (8, 42_000_000, 0.39, 0.54), "large": (20, 92_000_000, 0.60, 0.67), "full": (30, BASE_PARAMETERS, 0.61, 0.69)}  # fmt: skip
SEPARATE_COST = {"full": (10, 40.0), "small": (10, 12.5), "large": (10, 27.5)}  # steps, seconds


@pytest.fixture
def elastic_results(results):  # noqa: F811
    for variant, (steps, seconds) in SEPARATE_COST.items():
        path = results / variant / "model" / "model_info.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"steps": steps, "train_seconds": seconds}))
    (results / "elastic" / "model").mkdir(parents=True)
    depths = [
        {"name": name, "layers": layers, "weight": 1.0, "params": params}
        for name, (layers, params, *_) in DEPTHS.items()
    ]
    info = {
        "variant": "elastic", "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "layers_before": 30,
        "layers_after": 30, "params_before": BASE_PARAMETERS, "params_after": BASE_PARAMETERS, "steps": 10,
        "train_seconds": 48.25, "elastic_depths": depths,
    }  # fmt: skip
    (results / "elastic" / "model" / "model_info.json").write_text(json.dumps(info))
    for name, (layers, params, sts, classification) in DEPTHS.items():
        (results / f"elastic@{name}").mkdir()
        summary = mteb_summary(layers, params + 81_408 * layers, sts, classification, 9.0)
        (results / f"elastic@{name}" / "mteb.json").write_text(json.dumps(summary))
    return results


def test_elastic_rows_carry_their_depths_size_and_the_runs_cost(elastic_results, tmp_path):
    rows = {row["variant"]: row for row in read_csv(write_and_return(elastic_results, tmp_path))}
    # found without --variants: every folder with an mteb.json; the run's own folder has none
    assert sorted(rows) == ["elastic@full", "elastic@large", "elastic@small", "full", "large", "small"]
    for name, (layers, params, sts, classification) in DEPTHS.items():
        row = rows[f"elastic@{name}"]
        assert (int(row["layers"]), int(row["parameters"])) == (layers, params)  # without the adapter
        assert float(row["percent_removed"]) == round(100 * (1 - params / BASE_PARAMETERS), 2)
        assert (row["train_steps"], row["train_seconds"]) == ("10", "48.2")  # one run for all three
        assert float(row["average"]) == round((sts + classification) / 2, 4)
    for variant, (steps, seconds) in SEPARATE_COST.items():
        assert (rows[variant]["train_steps"], float(rows[variant]["train_seconds"])) == (str(steps), seconds)
    # the separate runs together cost 80 s, the elastic one 48.25 s: the table shows both
    assert sum(float(rows[v]["train_seconds"]) for v in SEPARATE_COST) == 80.0


def write_and_return(results, out):  # noqa: F811
    write_report(results, out)
    return out / "summary.csv"


def test_the_plot_draws_the_elastic_depths_as_their_own_line(elastic_results, tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    write_report(elastic_results, tmp_path)
    (ax,) = saved[0].axes
    drawn = {line.get_label(): line for line in ax.get_lines()}
    assert sorted(drawn) == ["BBCClassification", "LeeSTS", "elastic, one run (average)", "trained (average)"]
    elastic = drawn["elastic, one run (average)"]
    assert list(elastic.get_xdata()) == pytest.approx([42.0, 92.0, BASE_PARAMETERS / 1e6])
    assert list(elastic.get_ydata()) == pytest.approx([(s + c) / 2 for _, _, s, c in DEPTHS.values()])
    # the separately trained line and the task lines stay the separate variants'
    assert list(drawn["trained (average)"].get_ydata()) == pytest.approx(
        [(v[2] + v[3]) / 2 for v in sorted(VARIANTS.values(), key=lambda v: v[1])]
    )
    assert len(drawn["LeeSTS"].get_xdata()) == 3
    names = {text.get_text() for text in ax.texts}
    assert {"elastic@small", "elastic@large", "elastic@full", "small", "large", "full"} <= names


def test_an_elastic_row_of_a_depth_the_run_lacks_or_at_other_layers_is_an_error(elastic_results, tmp_path):
    (elastic_results / "elastic@l4").mkdir()
    (elastic_results / "elastic@l4" / "mteb.json").write_text(json.dumps(mteb_summary(4, 1, 0.1, 0.1, 1.0)))
    with pytest.raises(ValueError, match=r"elastic@l4: .*elastic/model/model_info.json records no elastic depth 'l4' \(trained: small, large, full\)"):  # fmt: skip
        write_report(elastic_results, tmp_path)
    (elastic_results / "elastic@l4" / "mteb.json").unlink()
    summary = mteb_summary(9, 1, 0.1, 0.1, 1.0)
    (elastic_results / "elastic@small" / "mteb.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match="evaluated 9 layers but depth small of .* has 8: evaluate it with --elastic-depth small"):  # fmt: skip
        write_report(elastic_results, tmp_path)
