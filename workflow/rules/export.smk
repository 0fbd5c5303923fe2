# The hub folder of a variant (`l3prune export hub`): the merged model, the sentence-transformers
# files and a model card with the variant's MTEB scores. Requested by rule all (Snakefile) only for
# models with `export: true`.


rule export:
    input:
        model="results/{model}/{variant}/model",
        scores="results/{model}/{variant}/mteb.json",
    output:
        directory("results/{model}/{variant}/hub"),
    log:
        "logs/{model}/{variant}/export.log",
    conda:
        "../envs/l3prune.yaml"
    params:
        **step_params(None, "export"),
        config=lambda wildcards: MODELS[wildcards.model]["training_config"],
    shell:
        "HF_HUB_OFFLINE=1 python3 -m l3prune export hub {input.model:q} {output:q} --mteb {input.scores:q}"
        " --training-config {params.config:q} --repo-id l3prune/{wildcards.model}-{wildcards.variant}"
        " 2>&1 | tee {log:q}"
