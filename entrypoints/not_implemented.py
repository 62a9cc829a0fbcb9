"""Placeholder for MLproject entry points whose stage is not built yet.

It fails loudly (exit 3) instead of pretending: each stage says which issue builds it.
"""

import sys

PLANNED = {
    "sft": "SFT of the policy and the simulator (TRL + PEFT) — issue #3",
    "reward": "the engagement reward model on D_p — issue #3",
    "preference": "D_t from reward-model-ranked samples and D = D_p ∪ D_t — issue #3",
    "align": "DPO on D from the SFT policy — issue #3",
    "evaluate": "interactive evaluation against the simulator, with BoN baselines — issue #4",
    "compare": "Table 2 from tracked evaluate runs — issue #4",
    "main": "the whole pipeline as child runs — issue #4",
    "merge": "one D_p from search shards — issue #6",
    "annotate": "help-seeker states through an OpenAI-compatible endpoint — issue #6",
    "prepare": "downloading and verifying the corpora — issue #6",
    "human-eval": "the blind A/B human evaluation app — issue #7",
}

if __name__ == "__main__":
    stage = sys.argv[1] if len(sys.argv) > 1 else "?"
    what = PLANNED.get(stage, "this stage")
    print(f"error: entry point '{stage}' is not implemented yet ({what}). "
          "Only 'search' runs today; see README.md.", file=sys.stderr)
    sys.exit(3)
