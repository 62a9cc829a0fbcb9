import math

import pytest

from ixmcts.data.schema import MODEL, USER, Condition
from ixmcts.scenarios import get_scenario
from ixmcts.search import Tree, extract_pairs, ucb
from ixmcts.search.tree import Node


def make_tree(values):
    """A root user node with one model child per (Q, N) in ``values``."""
    tree = Tree(Condition("c", "p4g", "someone"))
    for i, (q, n) in enumerate(values):
        tree.add(tree.root, MODEL, 1, text=f"reply {i}", raw=f"reply {i}", Q=q, N=n, prune_score=0.0)
    tree.root.N = sum(n for _, n in values)
    return tree


def test_ucb_formula():
    node = Node(id=1, parent=0, role=MODEL, depth=1, Q=1.0, N=2)
    assert ucb(node, 8, c=math.sqrt(2)) == pytest.approx(0.5 + math.sqrt(2) * math.sqrt(math.log(8) / 2))
    assert ucb(Node(id=2, parent=0, role=MODEL, depth=1), 8, c=1.0) == math.inf


def test_selection_prefers_unvisited_then_highest_ucb():
    tree = make_tree([(1.0, 1), (0.0, 0), (0.0, 1)])
    assert tree.select_child(tree.root, c=1.0).id == 2  # the unvisited child first
    tree.nodes[2].N = 1
    tree.root.N = 3
    # all visited: child 1 has the best mean with equal exploration bonus
    assert tree.select_child(tree.root, c=1.0).id == 1
    # with a large c an under-visited child wins over a high-mean, often-visited one
    tree = make_tree([(9.0, 10), (0.4, 1)])
    assert tree.select_child(tree.root, c=0.0).id == 1
    assert tree.select_child(tree.root, c=5.0).id == 2


def test_unvisited_ties_break_by_prune_score_and_pruned_never_selected():
    tree = make_tree([(0, 0), (0, 0), (0, 0)])
    tree.nodes[1].prune_score, tree.nodes[2].prune_score, tree.nodes[3].prune_score = 0.1, 0.9, 0.5
    assert tree.select_child(tree.root, c=1.0).id == 2
    tree.nodes[2].pruned = True
    assert tree.select_child(tree.root, c=1.0).id == 3


def test_prune_keeps_exactly_top_k_per_depth():
    tree = Tree(Condition("c", "p4g", "someone"))
    scores = [0.3, -0.2, 0.9, 0.1, 0.5, 0.7]
    for s in scores:
        tree.add(tree.root, MODEL, 1, prune_score=s)
    dropped = tree.prune_depth(1, K=4)
    live = [n for n in tree.nodes if n.role == MODEL and not n.pruned]
    assert len(live) == 4
    assert sorted(n.prune_score for n in live) == sorted(scores)[-4:]
    assert sorted(n.prune_score for n in dropped) == sorted(scores)[:2]
    assert tree.prune_depth(1, K=4) == []  # already within K


def test_prune_ranks_by_score_keeps_nodes_in_flight_and_kills_dead_branches():
    """§3.2: keep the top-K model nodes of a depth by the pruning score. A visited node has no
    privilege (only a conversation in flight cannot be cut)."""
    tree = Tree(Condition("c", "p4g", "someone"))
    a = tree.add(tree.root, MODEL, 1, prune_score=-1.0, N=1)
    b = tree.add(tree.root, MODEL, 1, prune_score=0.5)
    u = tree.add(b, USER, 1)
    for s in (0.1, 0.2):
        tree.add(u, MODEL, 2, prune_score=s)
    flying = tree.add(tree.root, MODEL, 1, prune_score=-2.0, virtual=1)
    best = tree.add(tree.root, MODEL, 1, prune_score=0.9)
    tree.prune_depth(1, K=2)
    assert a.pruned and b.pruned  # the visited node ranked below the better-scored ones
    assert not flying.pruned and not best.pruned and not tree.dead
    # every child of a user node pruned → its parent model node is a dead end
    x = tree.add(tree.root, MODEL, 1, prune_score=0.0)
    ux = tree.add(x, USER, 1)
    kids = [tree.add(ux, MODEL, 2, prune_score=-5.0) for _ in range(2)]
    tree.prune_depth(2, K=2)
    assert all(k.pruned for k in kids) and x.pruned


def test_backpropagate_sums_rewards_along_the_path():
    tree = Tree(Condition("c", "p4g", "someone"))
    m1 = tree.add(tree.root, MODEL, 1)
    u1 = tree.add(m1, USER, 1)
    m2a, m2b = tree.add(u1, MODEL, 2), tree.add(u1, MODEL, 2)
    end_a, end_b = tree.add(m2a, USER, 2, terminal=True), tree.add(m2b, USER, 2, terminal=True)
    tree.backpropagate(end_a, 1.0)
    tree.backpropagate(end_b, 0.25)
    tree.backpropagate(end_a, 0.5)
    assert (m1.Q, m1.N) == (1.75, 3) and (tree.root.Q, tree.root.N) == (1.75, 3)
    assert (m2a.Q, m2a.N, m2b.Q, m2b.N) == (1.5, 2, 0.25, 1)
    assert m2a.value == 0.75


def test_extract_pairs_chosen_beats_rejected_on_the_same_context():
    scenario = get_scenario("p4g")
    tree = make_tree([(2.0, 2), (0.0, 1), (1.0, 1), (0.0, 0)])  # values 1.0, 0.0, 1.0, unvisited
    pairs = extract_pairs([tree], scenario)
    assert len(pairs) == 2  # (0 vs 1) and (2 vs 1); equal values and the unvisited child give none
    for p in pairs:
        assert p["chosen_value"] > p["rejected_value"]
        assert p["context"] == scenario.policy_messages(tree.condition, [])
        assert p["rejected"] == "reply 1" and p["depth"] == 1
    assert extract_pairs([tree], scenario, margin=1.0) == []


def test_tree_round_trips_through_dict():
    tree = make_tree([(1.0, 2), (0.5, 1)])
    again = Tree.from_dict(tree.to_dict())
    assert again.to_dict() == tree.to_dict()
