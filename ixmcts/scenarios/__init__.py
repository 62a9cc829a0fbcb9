"""Dialogue scenarios behind one interface (``Scenario``): ``esc`` and ``p4g``."""

from ..errors import IxmctsError
from .base import PolicyOutput, PruneItem, Scenario, UserOutput
from .esc import EmotionalSupport
from .p4g import PersuasionForGood

SCENARIOS = {"esc": EmotionalSupport, "p4g": PersuasionForGood}
LANGUAGES = ("zh", "en")  # ESC prompt languages: the paper's Chinese, and English


def get_scenario(name: str, *, language: str = "zh", gamma: float = 0.9, embedder: str = "minilm") -> Scenario:
    """Build a scenario by name; ``language`` applies to ESC, ``gamma`` (γ) to P4G."""
    if name == "esc":
        if language not in LANGUAGES:
            raise IxmctsError(f"unknown ESC language {language!r}; choose zh or en")
        return EmotionalSupport(language=language, embedder=embedder)
    if name == "p4g":
        return PersuasionForGood(gamma=gamma)
    raise IxmctsError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")


__all__ = ["PolicyOutput", "PruneItem", "LANGUAGES", "SCENARIOS", "Scenario", "UserOutput", "get_scenario"]
