rule train:
    input:
        unpack(train_inputs),
    output:
        # appears whole when training is done; checkpoints live in model.partial/ beside it, so a
        # failed or interrupted job leaves them for the rerun to resume from
        directory("results/{model}/{variant}/model"),
    log:
        "logs/{model}/{variant}/train.log",
    conda:
        "../envs/l3prune.yaml"
    threads: job_resource("train", "threads")
    resources:
        gpu=job_resource("train", "gpu"),
        mem_mb=job_resource("train", "mem_mb"),
        runtime=job_resource("train", "runtime"),
    params:
        **step_params("train", "training"),
        config=lambda wildcards: MODELS[wildcards.model]["training_config"],
        # a param, not {input.model}: while small and large wait for the checkpoint their input is its output
        model=lambda wildcards: base_model_folder(wildcards.model),
        launcher=train_launcher,
        prune_points=prune_points_option,
        layers=prune_layers,
    shell:
        "HF_HUB_OFFLINE=1 {params.launcher:q} train {params.config:q} --model {params.model:q}"
        " --variant {wildcards.variant} {params.prune_points:q} --output-dir {output:q} 2>&1 | tee {log:q}"
