import math

import pytest

from fakes import ESC_LEAVES, EXPECTED_REWARD, ScriptedBackend
from ixmcts.data import load_conditions
from ixmcts.data.schema import MODEL, USER
from ixmcts.errors import IxmctsError
from ixmcts.scenarios import get_scenario
from ixmcts.search import SearchConfig, SearchEngine, extract_pairs


def search(scenario="p4g", checkpoint=None, backend=None, **cfg):
    cfg = {"K": 6, "e": 3, "T": 5, "budget": 8, "seed": 1, **cfg}
    sc = get_scenario(scenario, language="en")
    backend = backend or ScriptedBackend()
    conditions = load_conditions(scenario, "sample", 4)
    engine = SearchEngine(sc, backend, backend, conditions, SearchConfig(**cfg), checkpoint=checkpoint)
    return engine, sc


def snapshot(engine, sc):
    return [t.to_dict() for t in engine.trees], extract_pairs(engine.trees, sc)


@pytest.mark.parametrize("scenario", ["p4g", "esc"])
def test_search_invariants(scenario):
    engine, sc = search(scenario)
    engine.run()
    cfg = engine.config
    for tree in engine.trees:
        users = [n for n in tree.nodes if n.role == USER]
        for u in users:
            kids = [tree.nodes[i] for i in u.children]
            assert len(kids) in (0, cfg.e)  # expansion width e
            assert all(k.role == MODEL and k.depth == u.depth + 1 for k in kids)
        for m in (n for n in tree.nodes if n.role == MODEL):
            assert len(m.children) <= 1 and m.depth <= cfg.T  # one user node after a model node
        for d in range(1, cfg.T + 1):
            assert sum(n.role == MODEL and n.depth == d and not n.pruned for n in tree.nodes) <= cfg.K
        assert tree.root.N == tree.completed <= cfg.trajectories  # finished trajectories, each back-propagated once
        for t in (n for n in tree.nodes if n.terminal):
            assert t.role == USER and (t.ended or t.depth == cfg.T)
            assert t.reward == (EXPECTED_REWARD[t.raw] if t.ended else 0.0)  # depth T without an end: 0
        assert all(n.virtual == 0 and not n.pending for n in tree.nodes)
    assert engine.stats.engaged_trajectories > 0
    assert sum(t.completed for t in engine.trees) + engine.stats.pruned_trajectories == engine.stats.trajectories + engine.stats.pruned_trajectories == sum(engine.started)
    pairs = extract_pairs(engine.trees, sc)
    assert pairs and all(p["chosen_value"] > p["rejected_value"] for p in pairs)


def test_user_speaks_first_in_esc_and_model_first_in_p4g():
    esc, _ = search("esc", budget=1)
    esc.run()
    assert all(t.root.text for t in esc.trees)
    p4g, _ = search("p4g", budget=1)
    p4g.run()
    assert all(t.root.text == "" and t.nodes[t.root.children[0]].role == MODEL for t in p4g.trees)


def test_every_step_batches_all_pending_calls_of_a_role():
    backend = ScriptedBackend()
    engine, _ = search(backend=backend)
    engine.step()
    assert backend.batches == [4]  # P4G: one policy call for the 4 roots
    engine.step()
    assert backend.batches[1:] == [4]  # then one simulator call for the 4 chosen replies
    engine.run()
    assert backend.stats.calls <= 2 * engine.stats.steps


def test_same_seed_same_trees_other_seed_other_trees():
    a, sc = search(seed=3)
    b, _ = search(seed=3)
    c, _ = search(seed=4)
    assert snapshot(a.run(), sc) == snapshot(b.run(), sc)
    assert snapshot(c.run(), sc) != snapshot(a, sc)


def test_results_do_not_depend_on_batching():
    """Per-request seeded backend: the engine's batches give the same trees as sending
    each request alone (the one-call-per-node baseline)."""

    class OneByOne(ScriptedBackend):
        def generate(self, prompts, n, sampling, seed=0):
            return [super(OneByOne, self).generate([p], n, sampling, seed)[0] for p in prompts]

    a, sc = search()
    b, _ = search(backend=OneByOne())
    assert snapshot(a.run(), sc) == snapshot(b.run(), sc)


def test_resume_from_checkpoint_gives_the_same_result(tmp_path):
    full, sc = search(seed=7)
    full.run()
    ckpt = tmp_path / "ckpt.json.gz"
    part, _ = search(seed=7, checkpoint=ckpt)
    for _ in range(5):
        part.step()
    resumed, _ = search(seed=7, checkpoint=ckpt)
    assert resumed.stats.steps == 5
    resumed.run()
    assert snapshot(resumed, sc) == snapshot(full, sc)
    assert resumed.stats.steps == full.stats.steps


def test_checkpoint_of_other_settings_is_refused(tmp_path):
    ckpt = tmp_path / "ckpt.json.gz"
    engine, _ = search(checkpoint=ckpt)
    engine.step()
    with pytest.raises(IxmctsError, match="other settings"):
        search(checkpoint=ckpt, K=5)


def test_parallel_trajectories_use_virtual_loss():
    engine, sc = search(parallel=3, budget=9)
    engine.step()
    assert len(engine.inflight) == 12  # 3 per tree, spread over different children
    for tree in engine.trees:
        firsts = {tree.path(tree.nodes[t.leaf])[1].id for t in engine.inflight if engine.trees[t.tree] is tree}
        assert len(firsts) == 3
    engine.run()
    # every started trajectory either finished (a visit of the root) or was pruned away
    assert sum(t.root.N for t in engine.trees) + engine.stats.pruned_trajectories == 9 * len(engine.trees)


@pytest.mark.parametrize("bad,msg", [({"K": 0}, "K must be"), ({"e": 0}, "e must be"), ({"T": 0}, "T must be"),
                                     ({"budget": 0}, "budget must be"), ({"parallel": 9, "K": 3}, "parallel")])
def test_invalid_settings(bad, msg):
    with pytest.raises(IxmctsError, match=msg):
        SearchConfig(**bad)


def test_paper_defaults():
    cfg = SearchConfig()
    assert (cfg.K, cfg.e, cfg.T, cfg.c, cfg.trajectories) == (81, 3, 15, math.sqrt(2), 81)
    assert cfg.policy_sampling.temperature == 0.9 and cfg.simulator_sampling.temperature == 0.3


@pytest.mark.parametrize("scenario", ["p4g", "esc"])
def test_closing_question_ends_every_conversation_at_depth_t(scenario):
    engine, sc = search(scenario, closing=True, T=2, budget=6)
    engine.run()
    at_t = [n for t in engine.trees for n in t.nodes if n.role == USER and n.depth == 2]
    assert at_t and all(n.terminal and n.ended for n in at_t)
    assert {n.reward for n in at_t} > {0.0}  # the closing answers carry real engagement
    without, _ = search(scenario, closing=False, T=2, budget=6)
    without.run()
    assert all(n.reward == 0.0 for t in without.trees for n in t.nodes if n.terminal and not n.ended)


def test_trees_done_counts_finished_trees():
    engine, _ = search(budget=2)
    assert engine.trees_done == 0
    engine.run()
    assert engine.trees_done == 4


def _finished_visits(tree, node) -> tuple[int, float]:
    """Visits and reward of the finished conversations below ``node`` (terminal user nodes)."""
    if node.terminal:
        return node.N, node.Q
    visits = reward = 0.0
    for child in node.children:
        n, q = _finished_visits(tree, tree.nodes[child])
        visits, reward = visits + n, reward + q
    return visits, reward


@pytest.mark.parametrize("scenario", ["p4g", "esc"])
def test_pruned_trajectories_back_propagate_nothing(scenario):
    """Pruning saves compute (§3.2): a trajectory whose new replies were all pruned is not a
    finished conversation, so no node's Q/N counts it and no pair is built on it."""
    engine, sc = search(scenario, K=2, e=3, T=4, budget=10)
    engine.run()
    assert engine.stats.pruned_trajectories > 0  # the setting does prune whole trajectories
    for tree in engine.trees:
        for node in tree.nodes:
            assert (node.N, node.Q) == pytest.approx(_finished_visits(tree, node))
    pairs = extract_pairs(engine.trees, sc)
    assert pairs
    for p in pairs:
        tree = next(t for t in engine.trees if t.condition.id == p["condition_id"])
        for key in ("chosen_node", "rejected_node"):
            assert _finished_visits(tree, tree.nodes[p[key]])[0] > 0


def test_esc_endings_without_a_state_are_counted_and_never_rewarded():
    engine, _ = search("esc", budget=12)
    engine.run()
    bare = [n for t in engine.trees for n in t.nodes if n.terminal and n.raw == ESC_LEAVES]
    assert bare and all(n.reward == 0.0 for n in bare)
    assert engine.stats.ended_without_state == len(bare)
