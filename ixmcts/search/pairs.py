"""Preference pairs D_p from search trees.

For every user node whose model children were visited, every pair of visited siblings whose
values Q/N differ by more than ``margin`` gives (context, chosen = higher, rejected = lower).
Both responses were sampled from the same policy on the same context.
"""

from __future__ import annotations

from itertools import combinations

from ..data.schema import MODEL
from ..scenarios.base import Scenario
from .tree import Tree


def extract_pairs(trees: list[Tree], scenario: Scenario, margin: float = 0.0) -> list[dict]:
    pairs = []
    for tree in trees:
        for user in tree.nodes:
            visited = [tree.nodes[i] for i in user.children if tree.nodes[i].role == MODEL and tree.nodes[i].N > 0]
            if len(visited) < 2:
                continue
            context = scenario.policy_messages(tree.condition, tree.history(user))
            for a, b in combinations(visited, 2):
                if abs(a.value - b.value) <= margin:
                    continue
                hi, lo = (a, b) if a.value > b.value else (b, a)
                pairs.append({
                    "scenario": scenario.name, "condition_id": tree.condition.id, "depth": hi.depth,
                    "context": context, "chosen": hi.raw, "rejected": lo.raw,
                    "chosen_value": hi.value, "rejected_value": lo.value,
                    "chosen_visits": hi.N, "rejected_visits": lo.N,
                    "chosen_node": hi.id, "rejected_node": lo.id,
                })
    return pairs
