rule report:
    input:
        scores=variant_files("results/{model}/{variant}/mteb.json", of=rows),
        sizes=variant_files("results/{model}/{variant}/model"),
        untrained=untrained_files,
    output:
        summary=report(
            "results/{model}/summary.csv",
            caption="../report/summary.rst",
            category="{model}",
            labels={"model": "{model}", "figure": "summary table"},
        ),
        plot=report(
            "results/{model}/score_vs_parameters.png",
            caption="../report/score_vs_parameters.rst",
            category="{model}",
            labels={"model": "{model}", "figure": "score against parameters"},
        ),
    log:
        "logs/{model}/report.log",
    conda:
        "../envs/l3prune.yaml"
    params:
        **step_params(None, "report"),
        variants=lambda wildcards: report_variants(wildcards.model),
    shell:
        "python3 -m l3prune report results/{wildcards.model} --out-dir results/{wildcards.model}"
        " --variants {params.variants:q} 2>&1 | tee {log:q}"
