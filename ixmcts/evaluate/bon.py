"""Best-of-N choosers: pick one of N policy candidates per turn.

- engagement: the engagement reward model scores each candidate in context;
- strategy / knowledge: an advisor LLM writes the strategy to use next, or knowledge
  relevant to the turn; the candidate with the highest MiniLM cosine to it wins.
"""

from __future__ import annotations

from ..errors import IxmctsError
from ..llm.backend import Sampling
from ..scenarios import SCENARIOS, scoring

ADVICE = {
    "strategy": "Read the conversation and write, in one sentence, the strategy the {speaker} should use in the next reply.",
    "knowledge": "Read the conversation and write, in one or two sentences, knowledge relevant to the {speaker}'s next reply.",
}


def best(scores: list[float]) -> int:
    """The index of the highest score (the first one on ties)."""
    return max(range(len(scores)), key=lambda k: (scores[k], -k))


class RewardChooser:
    def __init__(self, scorer):
        self.scorer = scorer

    def choose(self, contexts, candidates):
        flat_ctx = [c for c, cands in zip(contexts, candidates) for _ in cands]
        scores = self.scorer.score(flat_ctx, [x for cands in candidates for x in cands])
        out, k = [], 0
        for cands in candidates:
            out.append(best(scores[k : k + len(cands)]))
            k += len(cands)
        return out


class AdviceChooser:
    def __init__(self, advisor, kind: str, scenario: str, embedder: str = scoring.MINILM, max_new_tokens: int = 64):
        if kind not in ADVICE:
            raise IxmctsError(f"unknown BoN reward {kind!r}; choose engagement, strategy or knowledge")
        self.advisor, self.kind, self.embedder = advisor, kind, embedder
        self.instruction = ADVICE[kind].format(speaker=SCENARIOS[scenario].policy_speaker)
        self.sampling = Sampling(temperature=0.3, max_new_tokens=max_new_tokens)
        self.advice: list[str] = []  # the latest turn's advice, for the records

    def choose(self, contexts, candidates):
        transcript = ["\n".join(f"{m['role']}: {m['content']}" for m in ctx[1:]) for ctx in contexts]
        prompts = [[{"role": "system", "content": self.instruction}, {"role": "user", "content": t or "(no turns yet)"}]
                   for t in transcript]
        self.advice = [a[0] for a in self.advisor.generate(prompts, 1, self.sampling, seed=0)]
        flat_adv = [a for a, cands in zip(self.advice, candidates) for _ in cands]
        sims = scoring.cosine_pairs(flat_adv, [x for cands in candidates for x in cands], model=self.embedder)
        out, k = [], 0
        for cands in candidates:
            out.append(best(sims[k : k + len(cands)]))
            k += len(cands)
        return out
