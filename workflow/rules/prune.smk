rule layerwise_loss:
    input:
        unpack(model_inputs),
    output:
        "results/{model}/layerwise_loss.json",
    log:
        "logs/{model}/layerwise_loss.log",
    conda:
        "../envs/l3prune.yaml"
    threads: job_resource("layerwise_loss", "threads")
    resources:
        gpu=job_resource("layerwise_loss", "gpu"),
        mem_mb=job_resource("layerwise_loss", "mem_mb"),
        runtime=job_resource("layerwise_loss", "runtime"),
    params:
        **step_params("layerwise", "layerwise"),
        config=lambda wildcards: MODELS[wildcards.model]["training_config"],
    shell:
        "HF_HUB_OFFLINE=1 python3 -m l3prune layerwise-loss {params.config:q} --model {input.model:q}"
        " --out {output:q} 2>&1 | tee {log:q}"


# a checkpoint: the small and large training jobs read their layer counts from its output
checkpoint prune_points:
    input:
        "results/{model}/layerwise_loss.json",
    output:
        points="results/{model}/prune_points.json",
        plot=report(
            "results/{model}/prune_points.png",
            caption="../report/prune_points.rst",
            category="{model}",
            labels={"model": "{model}", "figure": "layerwise loss"},
        ),
    log:
        "logs/{model}/prune_points.log",
    conda:
        "../envs/l3prune.yaml"
    params:
        **step_params(None, "layerwise"),
    shell:
        "python3 -m l3prune prune-points {input:q} --out {output.points:q} --plot {output.plot:q}"
        " 2>&1 | tee {log:q}"
