"""Bundled sample files in the real corpora's formats, written by this project
(``scripts/make_samples.py``), for the embedded default and the tests."""

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent
P4G_DIR = SAMPLES / "p4g"  # 30 dialogues in the corpus's CSV format, under names of their own
P4G_FILES = {"dialog_csv": "sample_dialog.csv", "info_csv": "sample_info.csv"}
P4G_CONDITIONS = P4G_DIR / "conditions.jsonl"  # 30 synthesized personas
PSYDT = SAMPLES / "esc" / "PsyDTCorpus_sample.json"  # 30 dialogues
PSYQA = SAMPLES / "esc" / "psyqa_sample.json"  # 30 questions


def sample_chat_texts() -> list[str]:
    """Every sample dialogue rendered in ChatML, as training text for the tiny test model."""
    from ...scenarios import get_scenario
    from ..conditions import load_dialogues

    texts = []
    for name in ("p4g", "esc"):
        scenario = get_scenario(name, language="en")
        for dialogue in load_dialogues(name, "sample"):
            texts += scenario.render_dialogue_text(dialogue)
    return texts
