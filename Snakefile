from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/export.smk"


rule all:
    input:
        expand("results/{model}/summary.csv", model=config["run"]),
        # each variant's hub folder, for the models with export: true (workflow/rules/export.smk)
        [
            f"results/{m}/{v}/hub"
            for m in config["run"]
            if MODELS[m]["export"]
            # one elastic adapter serves several depths: docs/training.md says how to export one
            for v in variants(m)
            if v != ELASTIC
        ],
