"""The variants of a training config: the models it asks to train, by name, and what each prunes.

  full     the unpruned model, trained the same way (the baseline every pruned model is compared to)
  pNN      `percent_prune` value 0 < p < 1: drop that fraction of the layers (0.25 -> p25)
  lNN      `percent_prune` value n >= 1: keep n layers (8 -> l8)
  small    L3Prune's small configuration } when `autoprune` asks for them; `small`/`large`/`small+large`
  large    L3Prune's large configuration } replace `percent_prune`, `all` adds them to it
  elastic  one run trained at every depth of `elastic_depths` together (l3prune.elastic), when set;
           its depths are evaluated as rows elastic@<depth>

`small` and `large` take their layer counts from the prune points ({"small": n, "large": n,
"num_layers": N}, written by `l3prune prune-points` or found by `l3prune()`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .elastic import ELASTIC, POINT_DEPTHS, depths_need_prune_points, missing_prune_points, variant_name
from .files import read_json


def variant_names(config) -> list[str]:
    """The names of a TrainConfig's variants, known before L3Prune runs (`full` always comes first)."""
    names = ["full"]
    if config.autoprune in (None, "all"):
        names += [variant_name(v) for v in config.percent_prune]
    if config.autoprune in ("small", "small+large", "all"):
        names.append("small")
    if config.autoprune in ("large", "small+large", "all"):
        names.append("large")
    if config.elastic_depths:
        names.append(ELASTIC)
    return names


def needs_prune_points(config, name: str) -> bool:
    """Whether variant `name` of `config` takes layer counts from L3Prune's prune points."""
    return name in POINT_DEPTHS or (name == ELASTIC and depths_need_prune_points(config.elastic_depths))


def check_variant_name(config, name: str) -> str:
    names = variant_names(config)
    if name not in names:
        raise ValueError(f"{config.source}: no variant {name!r}; this config has: {', '.join(names)}")
    return name


def variant_value(config, name: str, prune_points: Mapping | None = None) -> float | int | None:
    """What variant `name` of `config` prunes: None (full), a fraction to drop, or a layer count to
    keep; prune points are needed only for `small` and `large`. The elastic variant's is None here:
    its layer count is its deepest depth's, resolved when it trains (l3prune.elastic.resolve_depths)."""
    check_variant_name(config, name)
    if name in ("full", ELASTIC):
        return None
    if name in POINT_DEPTHS:
        if prune_points is None:
            raise ValueError(
                missing_prune_points(f"{config.source}: variant '{name}' (autoprune '{config.autoprune}')")
            )
        return check_prune_points(prune_points)[name]
    return next(v for v in config.percent_prune if variant_name(v) == name)


def variants(config, prune_points: Mapping | None = None) -> dict[str, float | int | None]:
    """Variant name -> what it prunes (see variant_value), for every variant of `config`."""
    return {name: variant_value(config, name, prune_points) for name in variant_names(config)}


def check_prune_points(points: Mapping, source: str = "prune points") -> Mapping:
    for key in ("num_layers", "small", "large"):
        value = points.get(key) if isinstance(points, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{source}: '{key}' must be a positive layer count, got {value!r}")
    if not points["small"] <= points["large"] <= points["num_layers"]:
        raise ValueError(
            f"{source}: need small <= large <= num_layers, got small={points['small']}, "
            f"large={points['large']}, num_layers={points['num_layers']}"
        )
    return points


def load_prune_points(path: str | os.PathLike) -> dict:
    """Read points.json ({"small": n, "large": n, "num_layers": N, ...}) as written by `l3prune prune-points`."""
    points = read_json(path, what="prune points file")
    return dict(check_prune_points(points, source=str(path)))
