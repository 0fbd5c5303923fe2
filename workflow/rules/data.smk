rule demo_assets:
    output:
        model=directory(f"{DEMO}/model"),
        train=f"{DEMO}/train.jsonl",
        tasks=expand("{demo}/tasks/{task}.jsonl", demo=DEMO, task=DEMO_TASKS),
        manifest=f"{DEMO}/MANIFEST.json",
    log:
        "logs/demo_assets.log",
    conda:
        "../envs/l3prune.yaml"
    params:
        # the builders' own code version, not the assets command's: a change to the hub download
        # code (the same command module) does not rebuild the demo's data and retrain it
        code=code_version("l3prune.demo.assets", Path(workflow.basedir) / "l3prune"),
        out=lambda wildcards, output: Path(output.manifest).parent,
    shell:
        "python3 -m l3prune demo-assets --out {params.out:q} 2>&1 | tee {log:q}"


rule download_file:
    output:
        "{path}",
    log:
        "logs/download/{path}.log",
    wildcard_constraints:
        path=one_of(downloads(archive=False)),
    conda:
        "../envs/l3prune.yaml"
    params:
        url=lambda wildcards: DOWNLOADS[wildcards.path]["url"],
        sha256=lambda wildcards: sha256_option(wildcards.path),
    shell:
        "python3 -m l3prune download {params.url:q} {params.sha256:q} --out {output:q} 2>&1 | tee {log:q}"


rule download_archive:
    output:
        directory("{path}"),
    log:
        "logs/download/{path}.log",
    wildcard_constraints:
        path=one_of(downloads(archive=True)),
    conda:
        "../envs/l3prune.yaml"
    params:
        url=lambda wildcards: DOWNLOADS[wildcards.path]["url"],
        sha256=lambda wildcards: sha256_option(wildcards.path),
        archive=lambda wildcards: DOWNLOADS[wildcards.path]["archive"],
        subdir=lambda wildcards: subdir_option(wildcards.path),
        layout=lambda wildcards: layout_option(wildcards.path),
    shell:
        "python3 -m l3prune download {params.url:q} {params.sha256:q} --out {params.archive:q}"
        " --extract {output:q} {params.subdir:q} {params.layout:q} 2>&1 | tee {log:q}"


# The one job that talks to the model hub (and the only one that needs HF_TOKEN for a gated
# model, which huggingface_hub reads from the environment): the GPU jobs load the folder offline.
rule download_model:
    output:
        directory(f"{MODEL_DIR}/{{repo}}"),
    log:
        "logs/download/models/{repo}.log",
    wildcard_constraints:
        repo=r"[\w.-]+(/[\w.-]+)?",
    conda:
        "../envs/l3prune.yaml"
    params:
        revision=lambda wildcards: revision_option(wildcards.repo),
    shell:
        "python3 -m l3prune download-model {wildcards.repo:q} {params.revision:q} --out {output:q}"
        " 2>&1 | tee {log:q}"


# a model_dir that holds the other downloads too: their own rules make them
ruleorder: demo_assets > download_file > download_archive > download_model


# Under a cluster executor the downloads run where Snakemake runs (a login node, with the network
# and HF_TOKEN), so the compute nodes need neither.
localrules:
    download_file,
    download_archive,
    download_model,
