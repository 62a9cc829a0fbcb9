"""The search tree: nodes, UCB selection, pruning bookkeeping and back-propagation.

One tree per user condition U. Nodes alternate: a user node (simulator output) has up to
``e`` model-node children (policy samples); a model node has at most one user node after
it. Q and N live on every node; only model nodes' Q/N are compared.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..data.schema import MODEL, USER, Condition, Turn


@dataclass
class Node:
    id: int
    parent: int | None
    role: str  # USER or MODEL
    depth: int  # model node: its round (1..T); user node: the round it answers (root: 0)
    text: str = ""  # the reply the other side sees
    state: str = ""  # ESC: help-seeker state (user) / predicted state (model)
    raw: str = ""  # the full generated text (ESC policy: CoT + reply)
    children: list[int] = field(default_factory=list)
    Q: float = 0.0  # sum of back-propagated rewards
    N: int = 0  # visits
    virtual: int = 0  # in-flight trajectories through this node (virtual loss)
    prune_score: float | None = None
    pruned: bool = False
    terminal: bool = False  # user node: the conversation ended here (or hit depth T)
    ended: bool = False  # user node: the simulator itself ended the conversation
    reward: float | None = None  # user node: the engagement reward, when terminal
    well_formed: bool = True
    pending: bool = False  # model node: its user node is being generated

    @property
    def value(self) -> float:
        return self.Q / self.N if self.N else 0.0


def ucb(child: Node, parent_visits: int, c: float) -> float:
    """UCB(a_i) = Q(a_i)/N(a_i) + c·sqrt(ln N(a_{i−2}) / N(a_i)); unvisited → +inf.
    Virtual visits count as visits with reward 0 so parallel trajectories spread out."""
    n = child.N + child.virtual
    if n == 0:
        return math.inf
    return child.Q / n + c * math.sqrt(math.log(max(parent_visits, 1)) / n)


class Tree:
    def __init__(self, condition: Condition, nodes: list[Node] | None = None, completed: int = 0, engaged: int = 0):
        self.condition = condition
        self.nodes: list[Node] = nodes if nodes is not None else [Node(id=0, parent=None, role=USER, depth=0)]
        self.completed = completed  # finished trajectories
        self.engaged = engaged  # finished trajectories with reward > 0

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add(self, parent: Node, role: str, depth: int, **fields) -> Node:
        node = Node(id=len(self.nodes), parent=parent.id, role=role, depth=depth, **fields)
        self.nodes.append(node)
        parent.children.append(node.id)
        return node

    def path(self, node: Node) -> list[Node]:
        out = [node]
        while out[-1].parent is not None:
            out.append(self.nodes[out[-1].parent])
        return out[::-1]

    def history(self, node: Node) -> list[Turn]:
        """The conversation from the root to ``node`` as turns (P4G's empty root is skipped)."""
        return [Turn(n.role, n.text, n.state) for n in self.path(node) if n.text or n.role == MODEL]

    def select_child(self, user: Node, c: float) -> Node | None:
        """The model child to descend into: unvisited first (best pruning score first),
        then the highest UCB; pruned and pending children are never selected."""
        live = [self.nodes[i] for i in user.children if not self.nodes[i].pruned and not self.nodes[i].pending]
        if not live:
            return None
        parent_visits = user.N + user.virtual
        return max(live, key=lambda n: (ucb(n, parent_visits, c), n.prune_score or 0.0, -n.id))

    def backpropagate(self, leaf: Node, reward: float) -> None:
        """Add ``reward`` to Q and one visit to N of every node from ``leaf`` to the root."""
        for node in self.path(leaf):
            node.Q += reward
            node.N += 1

    def prune_depth(self, depth: int, K: int) -> list[Node]:
        """Keep the K live model nodes at ``depth`` with the best pruning score (§3.2; ties:
        older first). Nodes that a running trajectory passes through are kept whatever their
        score, so no conversation in flight is cut; a visited node competes on its score like
        the others (pruning it stops further exploration there; its Q/N stays for D_p).
        Returns the nodes pruned now."""
        live = [n for n in self.nodes if n.role == MODEL and n.depth == depth and not n.pruned]
        if len(live) <= K:
            return []
        ranked = sorted(live, key=lambda n: (n.virtual > 0, n.prune_score or 0.0, -n.id), reverse=True)
        dropped = ranked[K:]
        for n in dropped:
            n.pruned = True
        for n in dropped:
            self._propagate_dead(self.nodes[n.parent])
        return dropped

    def _propagate_dead(self, user: Node) -> None:
        """A user node whose model children are all pruned is a dead end: prune its parent."""
        while user.children and all(self.nodes[i].pruned for i in user.children) and user.parent is not None:
            parent = self.nodes[user.parent]
            if parent.pruned:
                return
            parent.pruned = True
            user = self.nodes[parent.parent]

    @property
    def dead(self) -> bool:
        return bool(self.root.children) and all(self.nodes[i].pruned for i in self.root.children)

    def to_dict(self) -> dict:
        return {"condition": self.condition.to_dict(), "completed": self.completed, "engaged": self.engaged,
                "nodes": [asdict(n) for n in self.nodes]}

    @classmethod
    def from_dict(cls, d: dict) -> "Tree":
        return cls(Condition.from_dict(d["condition"]), [Node(**n) for n in d["nodes"]], d["completed"], d["engaged"])
