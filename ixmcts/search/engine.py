"""The i×MCTS engine: many trees advance together, one batched backend call per role per step.

One iteration is one simulated conversation (a trajectory) in one tree:
  1. selection    — from the root, descend by UCB through the visited part of the tree;
  2. expansion    — at a model node with no reply yet, the simulator answers (a user node);
                    if the conversation goes on, the policy samples ``e`` replies;
  3. pruning      — at each depth keep at most ``K`` live model nodes per tree, ranked by the
                    scenario's pruning score; the trajectory continues into its best new child.
                    When every new reply is pruned, the trajectory stops without a reward: it
                    is not a finished conversation (pruning saves compute, it does not judge);
  4. reward       — when the simulator ends the talk, the scenario's engagement; at depth
                    ``T`` without an end, 0 (or, with ``closing``, the engagement read from
                    the answer to the scenario's closing question);
  5. backpropagation — the reward is added to Q and N += 1 on every node of the path, so
                    every visit count and value comes from finished conversations only.
A step advances every in-flight trajectory by one call, so all simulator calls of a step go
to the backend as one batch and all policy calls as another (``e`` samples per prompt).
The state is checkpointed after every step; a rerun with the same settings resumes there.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..data.schema import MODEL, USER, Condition, Turn
from ..errors import IxmctsError
from ..io import atomic_open
from ..llm.backend import POLICY_SAMPLING, SIMULATOR_SAMPLING, GenerationBackend, Sampling
from ..scenarios.base import PruneItem, Scenario
from .tree import Node, Tree

SIMULATE, EXPAND = "simulate", "expand"


@dataclass
class SearchConfig:
    """i×MCTS settings. Defaults reproduce the paper (P4G depth; ESC uses T = 25)."""

    K: int = 81  # K: live model nodes kept per depth per tree (and the default trajectory budget)
    e: int = 3  # e: policy samples per expansion
    T: int = 15  # T: maximum depth (policy turns) of a conversation
    c: float = math.sqrt(2)  # c: UCB exploration constant
    budget: int | None = None  # trajectories (iterations) per tree; None → K
    parallel: int = 1  # trajectories in flight per tree (virtual loss)
    closing: bool = False  # at depth T ask the scenario's closing question instead of rewarding 0
    seed: int = 0
    policy_sampling: Sampling = field(default_factory=lambda: POLICY_SAMPLING)
    simulator_sampling: Sampling = field(default_factory=lambda: SIMULATOR_SAMPLING)

    def __post_init__(self):
        for name in ("K", "e", "T", "parallel"):
            if getattr(self, name) < 1:
                raise IxmctsError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.budget is not None and self.budget < 1:
            raise IxmctsError(f"budget must be at least 1, got {self.budget}")
        if self.c < 0:
            raise IxmctsError(f"c must be non-negative, got {self.c}")
        if self.parallel > self.K:
            raise IxmctsError(f"parallel ({self.parallel}) cannot exceed K ({self.K})")
        if isinstance(self.policy_sampling, dict):
            self.policy_sampling = Sampling(**self.policy_sampling)
        if isinstance(self.simulator_sampling, dict):
            self.simulator_sampling = Sampling(**self.simulator_sampling)

    @property
    def trajectories(self) -> int:
        return self.budget or self.K

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Trajectory:
    tree: int
    leaf: int  # the node that awaits a call: a model node (SIMULATE) or a user node (EXPAND)
    action: str


@dataclass
class SearchStats:
    steps: int = 0
    llm_calls: int = 0  # backend generate() calls
    generations: int = 0  # completions generated
    generated_tokens: int = 0
    generation_sec: float = 0.0
    trajectories: int = 0
    engaged_trajectories: int = 0  # trajectories that ended with reward > 0
    pruned_trajectories: int = 0  # trajectories stopped because every new reply was pruned (no reward)
    ended_without_state: int = 0  # endings that carry nothing the engagement can read (ESC: no final state)


class SearchEngine:
    def __init__(self, scenario: Scenario, policy: GenerationBackend, simulator: GenerationBackend,
                 conditions: list[Condition], config: SearchConfig, checkpoint: str | Path | None = None,
                 on_step: Callable[["SearchEngine"], None] | None = None):
        if not conditions:
            raise IxmctsError("the search needs at least one user condition")
        self.scenario, self.policy, self.simulator, self.config = scenario, policy, simulator, config
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.on_step = on_step
        self.trees = [Tree(c) for c in conditions]
        self.inflight: list[Trajectory] = []
        self.started = [0] * len(self.trees)
        self.stats = SearchStats()
        self.opened = not scenario.user_speaks_first  # ESC trees need the help-seeker's opening first
        if self.checkpoint and self.checkpoint.exists():
            self._load()

    # main loop ----------------------------------------------------------------
    def run(self) -> "SearchEngine":
        while not self.done:
            self.step()
        return self

    @property
    def done(self) -> bool:
        return self.opened and not self.inflight and all(self._finished(i) for i in range(len(self.trees)))

    def _finished(self, i: int) -> bool:
        return self.started[i] >= self.config.trajectories or self.trees[i].dead

    @property
    def trees_done(self) -> int:
        """Trees with every trajectory started and none in flight."""
        busy = {t.tree for t in self.inflight}
        return sum(self._finished(i) and i not in busy for i in range(len(self.trees)))

    def step(self) -> None:
        if not self.opened:
            self._open_conversations()
        else:
            self._start_trajectories()
            sims = [t for t in self.inflight if t.action == SIMULATE]
            exps = [t for t in self.inflight if t.action == EXPAND]
            sim_out, pol_out = self._generate_roles(
                (self.simulator, [self._sim_prompt(t) for t in sims], 1, self.config.simulator_sampling, 0),
                (self.policy, [self._pol_prompt(t) for t in exps], self.config.e, self.config.policy_sampling, 1))
            for traj, outs in zip(sims, sim_out):
                self._apply_simulation(traj, outs[0])
            self._apply_expansions(exps, pol_out)
        self.stats.steps += 1
        self._save()
        if self.on_step:
            self.on_step(self)

    # selection ----------------------------------------------------------------
    def _start_trajectories(self) -> None:
        for i, tree in enumerate(self.trees):
            while not self._finished(i) and sum(t.tree == i for t in self.inflight) < self.config.parallel:
                traj = self._select(i)
                if traj is None:
                    if not any(t.tree == i for t in self.inflight):
                        self.started[i] = self.config.trajectories  # nothing selectable is left
                    break
                self.started[i] += 1
                if traj.action == "done":  # re-visited a finished conversation: no call needed
                    self._finish(traj, tree.nodes[traj.leaf].reward or 0.0)
                else:
                    self._mark(tree, tree.nodes[traj.leaf], +1)
                    self.inflight.append(traj)

    def _select(self, i: int) -> Trajectory | None:
        tree, node = self.trees[i], self.trees[i].root
        while True:  # node is a user node here
            if node.terminal:
                return Trajectory(i, node.id, "done")
            if not node.children:
                return Trajectory(i, node.id, EXPAND)
            child = tree.select_child(node, self.config.c)
            if child is None:
                return None
            if not child.children:
                child.pending = True
                return Trajectory(i, child.id, SIMULATE)
            node = tree.nodes[child.children[0]]

    def _mark(self, tree: Tree, leaf: Node, delta: int) -> None:
        for n in tree.path(leaf):
            n.virtual += delta

    # generation -----------------------------------------------------------------
    def _sim_prompt(self, t: Trajectory) -> list[dict]:
        tree = self.trees[t.tree]
        leaf = tree.nodes[t.leaf]
        return self.scenario.simulator_messages(tree.condition, tree.history(leaf), closing=self._closing(leaf))

    def _closing(self, leaf: Node) -> bool:
        return self.config.closing and leaf.depth >= self.config.T

    def _pol_prompt(self, t: Trajectory) -> list[dict]:
        tree = self.trees[t.tree]
        return self.scenario.policy_messages(tree.condition, tree.history(tree.nodes[t.leaf]))

    def _generate(self, backend: GenerationBackend, prompts: list, n: int, sampling: Sampling, role: int) -> list[list[str]]:
        if not prompts:
            return []
        return self._counted(backend, lambda: [backend.generate(prompts, n, sampling, seed=self._seed(role))],
                             [(prompts, n)])[0]

    def _seed(self, role: int) -> int:
        # The seed depends only on (seed, step, role), so a resumed search samples as the original.
        return (self.config.seed * 1_000_003 + self.stats.steps * 2 + role) % 2**31

    def _generate_roles(self, *calls) -> list[list[list[str]]]:
        """Each ``(backend, prompts, n, sampling, role)`` call's completions. When the roles share
        one backend that decodes several calls together (``generate_many``), one running batch
        carries them all: fuller batches, the same samples (each call keeps its seed)."""
        busy = [c for c in calls if c[1]]
        backend = busy[0][0] if busy else None
        if len(busy) < 2 or any(c[0] is not backend for c in busy) or not hasattr(backend, "generate_many"):
            return [self._generate(*c) for c in calls]
        from ..llm import Request

        requests = [Request(prompts, n, sampling, self._seed(role)) for _, prompts, n, sampling, role in calls]
        return self._counted(backend, lambda: backend.generate_many(requests), [(c[1], c[2]) for c in calls])

    def _counted(self, backend: GenerationBackend, call, shapes: list[tuple[list, int]]) -> list[list[list[str]]]:
        """Run ``call`` (one or more calls' completions), adding its time and counts to the stats."""
        before = (backend.stats.calls, backend.stats.sequences, backend.stats.generated_tokens)
        start = time.perf_counter()
        results = call()
        self.stats.generation_sec += time.perf_counter() - start
        self.stats.llm_calls += backend.stats.calls - before[0]
        self.stats.generations += backend.stats.sequences - before[1]
        self.stats.generated_tokens += backend.stats.generated_tokens - before[2]
        for outs, (prompts, n) in zip(results, shapes):
            if len(outs) != len(prompts) or any(len(o) != n for o in outs):
                raise IxmctsError(f"backend returned {[len(o) for o in outs]} completions for {len(prompts)} prompts × n={n}")
        return results

    def _open_conversations(self) -> None:
        """ESC: the help-seeker speaks first; its opening becomes each tree's root."""
        prompts = [self.scenario.simulator_messages(t.condition, []) for t in self.trees]
        outs = self._generate(self.simulator, prompts, 1, self.config.simulator_sampling, 0)
        for tree, (text,) in zip(self.trees, outs):
            parsed = self.scenario.parse_simulator(text)
            tree.root.text, tree.root.state, tree.root.raw = parsed.reply, parsed.state, text
        self.opened = True

    # expansion, reward, back-propagation ------------------------------------------
    def _apply_simulation(self, traj: Trajectory, text: str) -> None:
        tree = self.trees[traj.tree]
        leaf = tree.nodes[traj.leaf]
        parsed = self.scenario.parse_simulator(text, closing=self._closing(leaf))
        if parsed.ended and not self.scenario.readable_end(parsed):
            self.stats.ended_without_state += 1
        user = tree.add(leaf, USER, leaf.depth, text=parsed.reply, state=parsed.state, raw=text, ended=parsed.ended)
        user.virtual = 1  # the trajectory now runs through the new node too
        leaf.pending = False
        if parsed.ended or leaf.depth >= self.config.T:  # at depth T without an end: reward 0
            user.terminal = True
            user.reward = self.scenario.engagement(parsed, tree.history(user)) if parsed.ended else 0.0
            self._finish(traj, user.reward, user)
        else:
            traj.leaf, traj.action = user.id, EXPAND

    def _apply_expansions(self, trajs: list[Trajectory], outputs: list[list[str]]) -> None:
        new: list[tuple[Trajectory, list[Node]]] = []
        items: list[PruneItem] = []
        for traj, texts in zip(trajs, outputs):
            tree = self.trees[traj.tree]
            user = tree.nodes[traj.leaf]
            history = tree.history(user)
            children = []
            for text in texts:
                parsed = self.scenario.parse_policy(text)
                child = tree.add(user, MODEL, user.depth + 1, text=parsed.reply, state=parsed.state, raw=text,
                                 well_formed=parsed.well_formed)
                children.append(child)
                items.append(PruneItem(history, Turn(MODEL, child.text, child.state)))
            new.append((traj, children))
        scores = self.scenario.prune_scores(items) if items else []
        flat = [c for _, cs in new for c in cs]
        for child, score in zip(flat, scores):
            child.prune_score = float(score)
        for traj, children in new:
            tree = self.trees[traj.tree]
            tree.prune_depth(children[0].depth, self.config.K)
            user = tree.nodes[traj.leaf]
            child = tree.select_child(user, self.config.c)
            if child is None:  # every new reply ranked below the K kept at this depth
                self._abandon(traj)
                continue
            child.virtual += 1
            child.pending = True
            traj.leaf, traj.action = child.id, SIMULATE

    def _abandon(self, traj: Trajectory) -> None:
        """Stop a trajectory that pruning cut off: nothing is back-propagated, since a
        conversation that never finished has no engagement (it is not a failure either)."""
        tree = self.trees[traj.tree]
        self._mark(tree, tree.nodes[traj.leaf], -1)
        self.inflight.remove(traj)
        self.stats.pruned_trajectories += 1

    def _finish(self, traj: Trajectory, reward: float, leaf: Node | None = None) -> None:
        tree = self.trees[traj.tree]
        leaf = leaf or tree.nodes[traj.leaf]
        if traj in self.inflight:
            self._mark(tree, leaf, -1)
            self.inflight.remove(traj)
        tree.backpropagate(leaf, reward)
        tree.completed += 1
        self.stats.trajectories += 1
        if reward > 0:
            tree.engaged += 1
            self.stats.engaged_trajectories += 1

    # checkpoints -------------------------------------------------------------------
    def _save(self) -> None:
        if not self.checkpoint:
            return
        state = {"config": self.config.to_dict(), "opened": self.opened, "started": self.started,
                 "stats": asdict(self.stats), "inflight": [asdict(t) for t in self.inflight],
                 "trees": [t.to_dict() for t in self.trees]}
        with atomic_open(self.checkpoint, "wb") as fh:
            fh.write(gzip.compress(json.dumps(state, ensure_ascii=False).encode("utf-8"), mtime=0))

    def _load(self) -> None:
        restart = "delete it to restart the search from the beginning"
        try:
            # a truncated file raises EOFError; a whole gzip that is not a checkpoint, KeyError/TypeError
            state = json.loads(gzip.decompress(self.checkpoint.read_bytes()))
            same = (state["config"] == self.config.to_dict()
                    and [t["condition"]["id"] for t in state["trees"]] == [t.condition.id for t in self.trees])
            if same:
                trees = [Tree.from_dict(t) for t in state["trees"]]
                inflight = [Trajectory(**t) for t in state["inflight"]]
                started, opened, stats = state["started"], state["opened"], SearchStats(**state["stats"])
        except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, (KeyError, TypeError, AttributeError)) else exc
            raise IxmctsError(f"{self.checkpoint}: damaged search checkpoint ({reason}); {restart}") from None
        if not same:
            raise IxmctsError(f"{self.checkpoint}: checkpoint belongs to a search with other settings; {restart}")
        self.trees, self.inflight, self.started, self.opened, self.stats = trees, inflight, started, opened, stats
