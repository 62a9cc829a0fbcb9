"""One normalized schema for every corpus: a user condition, a turn, a dialogue."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

MODEL, USER = "model", "user"  # supporter/persuader (the policy) and help-seeker/persuadee (the simulator)


@dataclass
class Condition:
    """A user condition U: who the simulated user is (a PsyQA description, a P4G persona)."""

    id: str
    scenario: str
    description: str
    attributes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Condition":
        return cls(id=str(d["id"]), scenario=d["scenario"], description=d["description"], attributes=d.get("attributes", {}))


@dataclass
class Turn:
    """One utterance. ``state``: the help-seeker's state (user) or the predicted state (model), ESC only."""

    role: str
    text: str
    state: str = ""


@dataclass
class Dialogue:
    id: str
    scenario: str
    condition: Condition
    turns: list[Turn]
    meta: dict = field(default_factory=dict)  # e.g. {"donation": 0.5} for P4G
