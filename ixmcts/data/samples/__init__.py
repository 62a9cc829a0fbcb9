"""Bundled sample files in the real corpora's formats, written by this project
(``scripts/make_samples.py``), for the embedded default and the tests."""

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent
P4G_DIR = SAMPLES / "p4g"  # 30 dialogues in the corpus's CSV format, under names of their own
P4G_FILES = {"dialog_csv": "sample_dialog.csv", "info_csv": "sample_info.csv"}
P4G_CONDITIONS = P4G_DIR / "conditions.jsonl"  # 30 synthesized personas
PSYDT = SAMPLES / "esc" / "PsyDTCorpus_sample.json"  # 30 dialogues
PSYQA = SAMPLES / "esc" / "psyqa_sample.json"  # 30 questions
