# A variant's evaluation: one job writing mteb.json, or, for a model with evaluation_groups N > 1,
# N jobs of a group of tasks each (in parallel) and a merge job writing the same mteb.json. The
# model wildcard of each rule is limited to the models it serves, so the two never compete.

GROUPS = {model: spec.get("evaluation_groups", 1) for model, spec in MODELS.items()}


rule evaluate:
    input:
        model=evaluated_model,
        tasks=lambda wildcards: MODELS[wildcards.model]["tasks"],
        task_files=local_task_files,
    output:
        "results/{model}/{variant}/mteb.json",
    log:
        "logs/{model}/{variant}/evaluate.log",
    wildcard_constraints:
        model=one_of([m for m, n in GROUPS.items() if n == 1]),
    conda:
        "../envs/l3prune.yaml"
    threads: job_resource("evaluate", "threads")
    resources:
        gpu=job_resource("evaluate", "gpu"),
        mem_mb=job_resource("evaluate", "mem_mb"),
        runtime=job_resource("evaluate", "runtime"),
    params:
        **step_params(None, "evaluation"),
        # --trust-remote-code where the config opts in; --elastic-depth for a row elastic@<depth>;
        # the group options in evaluate_group
        options=evaluate_options,
        # the training data's mteb tasks go into the model record (training_datasets)
        config=lambda wildcards: MODELS[wildcards.model]["training_config"],
    shell:
        "python3 -m l3prune evaluate {input.model:q} --tasks {input.tasks:q} --out {output:q}"
        " --name l3prune/{wildcards.model}-{wildcards.variant} --training-config {params.config:q}"
        " {params.options:q}"
        " 2>&1 | tee {log:q}"


use rule evaluate as evaluate_group with:
    output:
        "results/{model}/{variant}/mteb.part-{group}-of-{groups}.json",
    log:
        "logs/{model}/{variant}/evaluate.part-{group}-of-{groups}.log",
    wildcard_constraints:
        model=one_of([m for m, n in GROUPS.items() if n > 1]),
        group=r"\d+",
        groups=r"\d+",


rule evaluate_merge:
    input:
        lambda wildcards: [
            f"results/{wildcards.model}/{wildcards.variant}/mteb.part-{k}-of-{GROUPS[wildcards.model]}.json"
            for k in range(1, GROUPS[wildcards.model] + 1)
        ],
    output:
        "results/{model}/{variant}/mteb.json",
    log:
        "logs/{model}/{variant}/evaluate_merge.log",
    wildcard_constraints:
        model=one_of([m for m, n in GROUPS.items() if n > 1]),
    conda:
        "../envs/l3prune.yaml"
    shell:
        "python3 -m l3prune evaluate-merge {input:q} --out {output:q} 2>&1 | tee {log:q}"


# The base model cut to a variant's layers and evaluated untrained: what its training is measured
# against (models.<m>.untrained_baselines).
rule evaluate_untrained:
    input:
        unpack(untrained_inputs),
    output:
        "results/{model}/{variant}/untrained/mteb.json",
    log:
        "logs/{model}/{variant}/evaluate_untrained.log",
    conda:
        "../envs/l3prune.yaml"
    threads: job_resource("evaluate", "threads")
    resources:
        gpu=job_resource("evaluate", "gpu"),
        mem_mb=job_resource("evaluate", "mem_mb"),
        runtime=job_resource("evaluate", "runtime"),
    params:
        **step_params("untrained", "evaluation"),
        config=lambda wildcards: MODELS[wildcards.model]["training_config"],
        model=lambda wildcards: base_model_folder(wildcards.model),
        tasks=lambda wildcards: MODELS[wildcards.model]["tasks"],
        prune_points=prune_points_option,
        layers=prune_layers,
    shell:
        "HF_HUB_OFFLINE=1 python3 -m l3prune evaluate-untrained {params.config:q} --model {params.model:q}"
        " --variant {wildcards.variant} {params.prune_points:q} --tasks {params.tasks:q} --out {output:q}"
        " --name l3prune/{wildcards.model}-{wildcards.variant}-untrained 2>&1 | tee {log:q}"
