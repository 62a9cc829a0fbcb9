"""Placeholder for MLproject entry points whose stage is not built yet.

It fails loudly (exit 3) instead of pretending: each stage says which issue builds it.
"""

import sys

PLANNED = {
    "human-eval": "the blind A/B human evaluation app — issue #7",
}

if __name__ == "__main__":
    stage = sys.argv[1] if len(sys.argv) > 1 else "?"
    what = PLANNED.get(stage, "this stage")
    print(f"error: entry point '{stage}' is not implemented yet ({what}). "
          "README.md lists the stages that run.", file=sys.stderr)
    sys.exit(3)
