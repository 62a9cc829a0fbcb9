"""Merge the D_p of search shards into one D_p (the ``merge`` entry point's method).

``search -P shard=i -P num_shards=n`` searches conditions ``i, i+n, i+2n, …``. Shards of one
search share every setting but the shard index (and how they ran: threads, batch size,
checkpoint folder); merging orders their pairs as the unsharded search would (by the
condition's position in the whole list), drops duplicates, and keeps each pair's shard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..errors import IxmctsError

# parameters that say how a shard ran, not what it searched
RUN_ONLY = frozenset({"shard", "threads", "batch_size", "checkpoint_dir"})


@dataclass
class Shard:
    run_id: str
    params: dict[str, str]  # the search run's logged parameters
    pairs: list[dict]
    conditions: list[dict]  # this shard's conditions, in search order
    models: dict[str, str] = field(default_factory=dict)  # policy / simulator upstream runs and base model


def positions(shard: Shard) -> dict[str, int]:
    """Each of the shard's conditions' position in the unsharded search (shard i holds i, i+n, …)."""
    index, num_shards = int(shard.params.get("shard", 0)), int(shard.params.get("num_shards", 1))
    return {c["id"]: index + j * num_shards for j, c in enumerate(shard.conditions)}


def merged_conditions(shards: list[Shard]) -> list[dict]:
    """The shards' conditions in the order of the unsharded search."""
    ranked = [(positions(s)[c["id"]], c) for s in shards for c in s.conditions]
    return [c for _, c in sorted(ranked, key=lambda item: item[0])]


def _settings(shard: Shard) -> dict[str, str]:
    return {k: v for k, v in shard.params.items() if k not in RUN_ONLY}


def merge_shards(shards: list[Shard], allow_partial: bool = False) -> list[dict]:
    """One D_p from the shards of one search, or a clear error when they are not that."""
    if not shards:
        raise IxmctsError("merge needs at least one search run")
    first = shards[0]
    for s in shards[1:]:
        if s.params.get("scenario") != first.params.get("scenario"):
            raise IxmctsError(f"search runs {first.run_id} and {s.run_id} are for different scenarios "
                              f"({first.params.get('scenario')!r} vs {s.params.get('scenario')!r})")
        a, b = _settings(first), _settings(s)
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        if differ:
            shown = ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in differ[:4])
            raise IxmctsError(f"search runs {first.run_id} and {s.run_id} are not shards of one search ({shown})")
        if s.models != first.models:
            raise IxmctsError(f"search runs {first.run_id} and {s.run_id} searched with different models "
                              f"({first.models} vs {s.models})")
    num_shards = int(first.params.get("num_shards", 1))
    indices = [int(s.params.get("shard", 0)) for s in shards]
    repeated = sorted({i for i in indices if indices.count(i) > 1})
    if repeated:
        raise IxmctsError(f"shard {repeated[0]} of {num_shards} is given twice")
    missing = sorted(set(range(num_shards)) - set(indices))
    if missing and not allow_partial:
        raise IxmctsError(f"shards {missing} of {num_shards} are missing (pass allow_partial=true to merge what there is)")

    ranked = []  # (position of the condition in the unsharded list, order within the shard, pair)
    for shard, index in zip(shards, indices):
        position = positions(shard)
        for k, pair in enumerate(shard.pairs):
            if pair["condition_id"] not in position:
                raise IxmctsError(f"search run {shard.run_id}: a pair's condition {pair['condition_id']!r} is not among its conditions")
            ranked.append((position[pair["condition_id"]], k, {**pair, "shard": index, "search_run": shard.run_id}))
    merged, seen = [], set()
    for _, _, pair in sorted(ranked, key=lambda r: r[:2]):
        key = (pair["condition_id"], json.dumps(pair["context"], sort_keys=True), pair["chosen"], pair["rejected"])
        if key not in seen:
            seen.add(key)
            merged.append(pair)
    return merged
