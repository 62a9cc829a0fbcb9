"""Corpora loaders (P4G, PsyDTCorpus, PsyQA), P4G persona synthesis and the bundled samples."""

from .conditions import load_conditions, load_dialogues
from .schema import MODEL, USER, Condition, Dialogue, Turn

__all__ = ["Condition", "Dialogue", "MODEL", "Turn", "USER", "load_conditions", "load_dialogues"]
