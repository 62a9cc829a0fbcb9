"""Table 5 (ratings with 95% bootstrap CIs and the ±1 rating-noise sensitivity test),
Figure 3 (win rates) and Fleiss' kappa (Section 5.2) from CSV files.

ratings.csv: ``session_id, rater_id, model, supportiveness, willingness`` (1–10; ``model`` is
the arm, e.g. SFT / Aligned; a session rates both arms, blind). annotations.csv:
``pair_id, annotator, label`` with labels ``a1 | a2 | tie``; the i×MCTS ranking is the
annotator ``imcts`` (the app writes it from the pair's values), the third rater.
"""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from pathlib import Path

from ..errors import IxmctsError
from ..evaluate.metrics import bootstrap_ci

DIMENSIONS = ("supportiveness", "willingness")
LABELS = ("a1", "a2", "tie")


def fleiss_kappa(counts: list[list[int]]) -> float:
    """Fleiss' kappa of ``counts[item][category]`` (every item rated by the same number of raters)."""
    if not counts:
        raise IxmctsError("Fleiss' kappa needs at least one item")
    n = sum(counts[0])
    if n < 2 or any(sum(row) != n for row in counts):
        raise IxmctsError("Fleiss' kappa needs the same number (≥ 2) of ratings for every item")
    items = len(counts)
    p_cat = [sum(row[j] for row in counts) / (items * n) for j in range(len(counts[0]))]
    p_item = [(sum(c * c for c in row) - n) / (n * (n - 1)) for row in counts]
    p_bar, p_e = sum(p_item) / items, sum(p * p for p in p_cat)
    return 1.0 if p_e == 1 else (p_bar - p_e) / (1 - p_e)


def noise_sensitivity(ratings: list[float], replicates: int = 1000, low: int = 1, high: int = 10, seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of the ratings after each is moved by −1, 0 or +1 at random
    (clipped to the scale), pooled over ``replicates``: does the ranking survive rating noise?"""
    rng = random.Random(seed)
    noisy = [min(high, max(low, r + rng.choice((-1, 0, 1)))) for _ in range(replicates) for r in ratings]
    mean = sum(noisy) / len(noisy)
    return mean, (sum((x - mean) ** 2 for x in noisy) / (len(noisy) - 1)) ** 0.5


def read_csv(path: str | Path, required: tuple[str, ...], allow_empty: bool = False) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise IxmctsError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows, header = list(reader), reader.fieldnames or []
    missing = [c for c in required if c not in header] or ([] if rows or allow_empty else ["any row"])
    if missing:
        raise IxmctsError(f"{path}: missing {', '.join(missing)}")
    return rows


def read_ratings(path: str | Path) -> list[dict]:
    rows = read_csv(path, ("session_id", "rater_id", "model", *DIMENSIONS))
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        for dim in DIMENSIONS:
            try:
                value = float(row[dim])
            except ValueError:
                raise IxmctsError(f"{path}: line {i}: {dim} {row[dim]!r} is not a number") from None
            if not 1 <= value <= 10:
                raise IxmctsError(f"{path}: line {i}: {dim} {value:g} is outside the 1–10 scale")
            row[dim] = value
    return rows


def table5(ratings: list[dict], seed: int = 0) -> list[dict]:
    """One row per model: per dimension the mean, 95% bootstrap CI and ±1-noise mean ± std."""
    by_model: dict[str, list[dict]] = defaultdict(list)
    for r in ratings:
        by_model[r["model"]].append(r)
    rows = []
    for model, rs in by_model.items():
        row = {"model": model, "n": len(rs)}
        for dim in DIMENSIONS:
            values = [r[dim] for r in rs]
            row[dim] = sum(values) / len(values)
            row[f"{dim}_ci"] = bootstrap_ci(values, lambda v: sum(v) / len(v), seed=seed)
            row[f"{dim}_noise"] = noise_sensitivity(values, seed=seed)
        rows.append(row)
    return rows


def win_rates(ratings: list[dict], model: str, baseline: str) -> dict[str, dict[str, float]]:
    """Per dimension, the share of sessions where ``model`` was rated above, equal to or
    below ``baseline`` (Figure 3); only sessions that rated both count."""
    sessions: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in ratings:
        sessions[r["session_id"]][r["model"]] = r
    paired = [s for s in sessions.values() if model in s and baseline in s]
    if not paired:
        raise IxmctsError(f"no session rated both {model!r} and {baseline!r}")
    out = {}
    for dim in DIMENSIONS:
        diff = Counter((s[model][dim] > s[baseline][dim]) - (s[model][dim] < s[baseline][dim]) for s in paired)
        out[dim] = {"win": diff[1] / len(paired), "tie": diff[0] / len(paired), "loss": diff[-1] / len(paired),
                    "sessions": len(paired)}
    return out


def annotation_kappa(rows: list[dict], with_imcts: bool = True) -> tuple[float, int]:
    """Fleiss' kappa over the pairs every rater labelled (the human annotators, plus the
    i×MCTS ranking as a third rater unless ``with_imcts`` is false)."""
    labels: dict[str, dict[str, str]] = defaultdict(dict)
    for i, r in enumerate(rows, start=2):
        if r["label"] not in LABELS:
            raise IxmctsError(f"line {i}: label {r['label']!r} is not one of {', '.join(LABELS)}")
        if with_imcts or r["annotator"] != "imcts":
            labels[r["pair_id"]][r["annotator"]] = r["label"]
    raters = {a for item in labels.values() for a in item}
    complete = [item for item in labels.values() if set(item) == raters]
    if len(raters) < 2 or not complete:
        raise IxmctsError(f"Fleiss' kappa needs pairs labelled by every rater; raters: {sorted(raters)}")
    counts = [[sum(1 for v in item.values() if v == lab) for lab in LABELS] for item in complete]
    return fleiss_kappa(counts), len(complete)


def to_markdown(rows: list[dict], wins: dict | None = None, kappas: dict | None = None) -> str:
    lines = ["| Model | n | Supportiveness | 95% CI | ±1 noise | Willingness | 95% CI | ±1 noise |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["model"], str(r["n"])]
        for dim in DIMENSIONS:
            lo, hi = r[f"{dim}_ci"]
            m, sd = r[f"{dim}_noise"]
            cells += [f"{r[dim]:.2f}", f"({lo:.2f}, {hi:.2f})", f"{m:.2f} ± {sd:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if wins:
        lines += ["", "| Dimension | win | tie | loss | sessions |", "|---|---|---|---|---|"]
        lines += [f"| {d} | {w['win']:.0%} | {w['tie']:.0%} | {w['loss']:.0%} | {w['sessions']} |" for d, w in wins.items()]
    if kappas:
        lines += [""] + [f"Fleiss' kappa ({name}): {k:.2f} over {n} pairs" for name, (k, n) in kappas.items()]
    return "\n".join(lines) + "\n"


def plot_win_rates(wins: dict, model: str, baseline: str, path) -> None:
    """Figure 3: stacked win / tie / loss bars per dimension."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.4))
    for y, (dim, w) in enumerate(wins.items()):
        left = 0.0
        for part, color in (("win", "#2a9d8f"), ("tie", "#bbbbbb"), ("loss", "#e76f51")):
            ax.barh(y, w[part], left=left, color=color, label=part if y == 0 else None)
            if w[part] >= 0.06:
                ax.text(left + w[part] / 2, y, f"{w[part]:.0%}", ha="center", va="center", fontsize=8)
            left += w[part]
    ax.set_yticks(range(len(wins)), list(wins))
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of sessions: {model} vs {baseline}")
    ax.legend(ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150, format="png")
    plt.close(fig)


def write_report(ratings_csv: str | Path, annotations_csv: str | Path | None, model: str, baseline: str,
                 output_dir: str | Path) -> dict:
    """Table 5 (``table5.md``) and Figure 3 (``figure3.png``) in ``output_dir`` from exported
    files, with Fleiss' kappa over the annotators (when two or more labelled the same pairs)
    and over the annotators plus the i×MCTS ranking. Returns the table, win rates and kappas."""
    from ..io import atomic_open

    ratings = read_ratings(ratings_csv)
    table, wins = table5(ratings), win_rates(ratings, model, baseline)
    labels = read_csv(annotations_csv, ("pair_id", "annotator", "label"), allow_empty=True) if annotations_csv else []
    humans = len({r["annotator"] for r in labels} - {"imcts"})
    kappas = {}
    if humans >= 2:
        kappas["annotators"] = annotation_kappa(labels, with_imcts=False)
    if humans >= 1 and any(r["annotator"] == "imcts" for r in labels):
        kappas["annotators + i×MCTS"] = annotation_kappa(labels)
    out = Path(output_dir)
    with atomic_open(out / "table5.md") as f:
        f.write(to_markdown(table, wins, kappas))
    with atomic_open(out / "figure3.png", "wb") as f:
        plot_win_rates(wins, model, baseline, f)
    return {"table": table, "wins": wins, "kappas": kappas, "files": [out / "table5.md", out / "figure3.png"]}
