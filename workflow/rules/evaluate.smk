rule evaluate:
    input:
        model="results/{model}/{variant}/model",
        tasks=lambda wildcards: MODELS[wildcards.model]["tasks"],
        task_files=local_task_files,
    output:
        "results/{model}/{variant}/mteb.json",
    log:
        "logs/{model}/{variant}/evaluate.log",
    conda:
        "../envs/l3prune.yaml"
    threads: job_resource("evaluate", "threads")
    resources:
        gpu=job_resource("evaluate", "gpu"),
        mem_mb=job_resource("evaluate", "mem_mb"),
        runtime=job_resource("evaluate", "runtime"),
    params:
        remote_code=remote_code_option,
    shell:
        "python3 -m l3prune evaluate {input.model:q} --tasks {input.tasks:q} --out {output:q}"
        " --name l3prune/{wildcards.model}-{wildcards.variant} {params.remote_code:q}"
        " 2>&1 | tee {log:q}"
