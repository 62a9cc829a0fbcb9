"""i×MCTS: the tree, the batched engine and pair extraction."""

from .engine import SearchConfig, SearchEngine, SearchStats
from .pairs import extract_pairs
from .tree import Node, Tree, ucb

__all__ = ["Node", "SearchConfig", "SearchEngine", "SearchStats", "Tree", "extract_pairs", "ucb"]
