"""What the method fetches, safely: sha256-checked, resumable, atomic downloads of data
(download.py, with layout checks in data_layout.py) and hub model snapshots (hub_model.py).

    from l3prune.assets.download import download            # any HTTP(S) file

Nothing is imported here, so the CLI stays fast. The offline demo's assets are `l3prune.demo`.
"""
