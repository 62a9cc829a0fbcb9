"""Interactive evaluation against the user simulator, Best-of-N baselines, Table 2's statistics."""

from .bon import AdviceChooser, RewardChooser
from .interact import EvalConfig, interact
from .metrics import bootstrap_ci, paired_permutation_test, summarize

__all__ = ["AdviceChooser", "EvalConfig", "RewardChooser", "bootstrap_ci", "interact",
           "paired_permutation_test", "summarize"]
