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
    shell:
        "python3 -m l3prune download {params.url:q} {params.sha256:q} --out {params.archive:q}"
        " --extract {output:q} {params.subdir:q} 2>&1 | tee {log:q}"
