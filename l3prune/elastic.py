"""Elastic depths: the depths one training run trains together, by name, layer count and weight.

A training config's `elastic_depths` lists them; each item is a depth, or {"depth": d, "weight": w}:

    "small" | "large"   L3Prune's prune points (needs the layerwise step, as the variants do)
    "full"              every layer
    0 < p < 1           drop that fraction of the layers (as percent_prune), named pNN
    n >= 1              keep n layers, named lNN

The `elastic` variant trains the model cut to the deepest of them, its loss the weighted sum of the
loss at each depth (weight 1 unless given). Its depth `<name>` is evaluated as the row
`elastic@<name>` (e.g. elastic@small, elastic@l8), next to the separately trained variants.

Light to import (no torch): the workflow reads it while it plans.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ELASTIC = "elastic"  # the variant's name
ROW_SEPARATOR = "@"  # elastic@small: the elastic variant evaluated at its depth `small`
NAMED_DEPTHS = ("small", "large", "full")
POINT_DEPTHS = ("small", "large")  # the depths and variants whose layer count comes from the prune points
DEPTHS_SCHEMA = {"type": "array"}  # [] trains no elastic variant; parse_depths checks the items
ACCEPTED = (
    '"small", "large", "full", a fraction in (0, 1) to drop, a whole layer count to keep, '
    'or {"depth": one of those, "weight": w > 0}'
)


@dataclass(frozen=True)
class ElasticDepth:
    """One trained depth: its name (small, large, full, pNN, lNN), layer count and loss weight."""

    name: str
    layers: int
    weight: float

    def as_json(self) -> dict:
        return {"name": self.name, "layers": self.layers, "weight": self.weight}


def variant_name(value: float | int) -> str:
    """0.25 -> 'p25' (drop 25% of the layers); 8 -> 'l8' (keep 8 layers): the name a pruned variant
    and an elastic depth share."""
    if isinstance(value, numbers.Integral):
        return f"l{value}"
    return f"p{value * 100:g}"


def depth_name(value: str | float | int) -> str:
    """'small' -> 'small'; 0.25 -> 'p25'; 8 -> 'l8' (the names variants give the same values)."""
    return value if isinstance(value, str) else variant_name(value)


def missing_prune_points(subject: str) -> str:
    """The error when `subject` (a variant, an elastic depth) takes its layer count from prune points
    that were not given."""
    return f"{subject} needs L3Prune's prune points: pass --prune-points points.json or let train run L3Prune"


def row_name(depth: str) -> str:
    return f"{ELASTIC}{ROW_SEPARATOR}{depth}"


def _depth_value(value, where: str):
    if isinstance(value, str) and value in NAMED_DEPTHS:
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if 0 < value < 1:
            return float(value)
        if value >= 1 and float(value).is_integer():
            return int(value)
    raise ValueError(f"{where}: {value!r} is not a depth; give {ACCEPTED}")


def parse_depths(items: Sequence, source: str = "<config>") -> list[dict]:
    """A config's elastic_depths as [{"depth": d, "weight": w}, ...] (d a name, fraction or layer
    count; w 1.0 unless given), checked; errors are one line naming the item and what is accepted."""
    parsed, names = [], []
    for index, item in enumerate(items):
        where = f"{source}: key 'elastic_depths[{index}]'"
        weight = 1.0
        if isinstance(item, Mapping):
            unknown = sorted(set(item) - {"depth", "weight"})
            if unknown or "depth" not in item:
                raise ValueError(
                    f"{where}: {dict(item)!r} needs key 'depth' and at most 'weight'; give {ACCEPTED}"
                )
            weight = item.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not weight > 0:
                raise ValueError(f"{where}: weight {weight!r} is not a number above 0")
            item = item["depth"]
        value = _depth_value(item, where)
        parsed.append({"depth": value, "weight": float(weight)})
        names.append(depth_name(value))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{source}: key 'elastic_depths' lists {', '.join(repeated)} more than once")
    return parsed


def depths_need_prune_points(depths: Sequence[Mapping]) -> bool:
    return any(d["depth"] in POINT_DEPTHS for d in depths)


def resolve_depths(
    depths: Sequence[Mapping], num_layers: int, prune_points: Mapping | None = None, source: str = "<config>"
) -> list[ElasticDepth]:
    """Each depth of parse_depths' list with its layer count in a `num_layers`-layer model, shallowest
    first (two names may share a layer count: L3Prune's `large` can be the full model)."""
    from .encoder.layers import layers_to_keep  # torch: only training resolves depths

    resolved = []
    for depth in depths:
        value = depth["depth"]
        if value == "full":
            layers = num_layers
        elif value in POINT_DEPTHS:
            if prune_points is None:
                raise ValueError(missing_prune_points(f"{source}: elastic depth '{value}'"))
            layers = prune_points[value]
        else:
            layers = layers_to_keep(value, num_layers)
        resolved.append(ElasticDepth(depth_name(value), layers, depth["weight"]))
    return sorted(resolved, key=lambda d: d.layers)


def depth_names(depths: Sequence[Mapping]) -> list[str]:
    return [depth_name(d["depth"]) for d in depths]


def trained_depth_layers(folder, name: str) -> int:
    """The layer count of depth `name` (small, large, full, pNN, lNN) of an elastic model folder,
    as its l3prune_encoder.json records it."""
    from pathlib import Path

    from .encoder.settings import ELASTIC_DEPTHS, SETTINGS_FILE
    from .files import read_json

    settings = read_json(Path(folder) / SETTINGS_FILE, if_missing={})
    depths = settings.get(ELASTIC_DEPTHS) or []
    for depth in depths:
        if depth["name"] == name:
            return depth["layers"]
    if not depths:
        raise ValueError(f"{folder} is not an elastic model: its {SETTINGS_FILE} records no {ELASTIC_DEPTHS}")
    raise ValueError(
        f"{folder} was trained for elastic depths {', '.join(d['name'] for d in depths)}, not {name!r}"
    )
