"""Table 2 from evaluation results, beside the paper's numbers.

Rows are method × reward (SFT; BoN with strategy / knowledge / engagement; Aligned); columns
are ESC engaged rate and #turn, P4G donation and #turn, each with its 95% CI, the number of
dialogues behind it (``n``: methods may be evaluated on different counts), and a paired
permutation test of each method against SFT on the conditions both were evaluated on. A cell without a
result stays missing ("—"); nothing is filled in.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

from ..scenarios import SCENARIOS
from .metrics import paired_permutation_test

ROWS = [("sft", "-"), ("bon", "strategy"), ("bon", "knowledge"), ("bon", "engagement"), ("aligned", "engagement")]
LABELS = {("sft", "-"): ("SFT", "—"), ("bon", "strategy"): ("BoN", "Strategy"), ("bon", "knowledge"): ("BoN", "Knowledge"),
          ("bon", "engagement"): ("BoN", "Engagement"), ("aligned", "engagement"): ("Aligned", "Engagement")}
# Table 2 of the paper: (ESC engaged rate, ESC #turn, P4G donation $, P4G #turn)
PAPER = {("sft", "-"): (0.6406, 39.07, 0.58, 18.67), ("bon", "strategy"): (0.6410, 39.48, 0.63, 18.86),
         ("bon", "knowledge"): (0.6490, 39.90, 0.67, 18.67), ("bon", "engagement"): (0.6563, 39.32, 0.73, 18.70),
         ("aligned", "engagement"): (0.8047, 38.15, 1.29, 18.75)}


@dataclass
class Result:
    """One finished evaluate run."""

    scenario: str
    method: str
    reward: str
    metrics: dict
    run_id: str = ""
    outcomes: dict = field(default_factory=dict)  # condition id → engagement, for the paired test


@dataclass
class Cell:
    value: float | None = None
    low: float | None = None
    high: float | None = None
    turns: float | None = None
    p_vs_sft: float | None = None
    run_id: str = ""
    n: int | None = None  # dialogues (interactions) evaluated


def build_table(results: list[Result]) -> dict[tuple[str, str], dict[str, Cell]]:
    """(method, reward) → scenario → Cell; the latest result wins when a cell has several."""
    table: dict = {row: {} for row in ROWS}
    for r in results:
        row = (r.method, "-" if r.method == "sft" else r.reward)
        if row not in table:
            continue
        key = f"eval/{SCENARIOS[r.scenario].headline_metric}"
        table[row][r.scenario] = Cell(r.metrics.get(key), r.metrics.get(key + "_ci_low"), r.metrics.get(key + "_ci_high"),
                                      r.metrics.get("eval/turns_mean"), None, r.run_id, _count(r))
    for scenario in SCENARIOS:
        sft = next((r for r in reversed(results) if r.scenario == scenario and r.method == "sft"), None)
        for r in results:
            row = (r.method, "-" if r.method == "sft" else r.reward)
            cell = table.get(row, {}).get(scenario)
            if sft is None or cell is None or r.method == "sft" or cell.run_id != r.run_id:
                continue
            shared = sorted(set(sft.outcomes) & set(r.outcomes))
            if shared:
                cell.p_vs_sft = paired_permutation_test([r.outcomes[c] for c in shared], [sft.outcomes[c] for c in shared])
    return table


def _count(r: Result) -> int | None:
    n = r.metrics.get("eval/interactions")
    return int(n) if n is not None else (len(r.outcomes) or None)


def _fmt(v: float | None, pct: bool = False, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{100 * v:.{digits}f}%" if pct else f"{v:.{digits}f}"


def _ci(c: Cell | None, pct: bool) -> str:
    if c is None or c.value is None:
        return "—"
    return f"{_fmt(c.value, pct)} [{_fmt(c.low, pct)}, {_fmt(c.high, pct)}]"


def _n(c: Cell | None) -> str:
    return "—" if c is None or c.n is None else str(c.n)


def rows_for_output(table) -> list[list[str]]:
    out = []
    for row in ROWS:
        method, reward = LABELS[row]
        esc, p4g = table[row].get("esc"), table[row].get("p4g")
        paper = PAPER[row]
        out.append([method, reward,
                    _ci(esc, True), _fmt(esc.turns if esc else None), _n(esc), _fmt(esc.p_vs_sft if esc else None, digits=3),
                    _ci(p4g, False), _fmt(p4g.turns if p4g else None), _n(p4g), _fmt(p4g.p_vs_sft if p4g else None, digits=3),
                    f"{100 * paper[0]:.2f}%", f"{paper[1]:.2f}", f"{paper[2]:.2f}", f"{paper[3]:.2f}"])
    return out


HEADER = ["method", "reward", "ESC engaged rate [95% CI]", "ESC #turn", "ESC n", "ESC p vs SFT",
          "P4G donation $ [95% CI]", "P4G #turn", "P4G n", "P4G p vs SFT",
          "paper ESC engaged", "paper ESC #turn", "paper P4G donation $", "paper P4G #turn"]


def to_markdown(table, provenance: str = "") -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows_for_output(table)]
    return (provenance + "\n\n" if provenance else "") + "\n".join(lines) + "\n"


def to_csv(table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(HEADER)
    w.writerows(rows_for_output(table))
    return buf.getvalue()


def to_latex(table) -> str:
    esc = lambda s: s.replace("%", r"\%").replace("$", r"\$").replace("—", "--")  # noqa: E731
    lines = [r"\begin{tabular}{ll" + "r" * (len(HEADER) - 2) + "}", r"\toprule",
             " & ".join(esc(h) for h in HEADER) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(c) for c in r) + r" \\" for r in rows_for_output(table)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


# each scenario's headline column in PAPER (ESC engaged rate, P4G donation $)
PAPER_HEADLINE = {"esc": 0, "p4g": 2}


def plot_panels(table) -> list[dict]:
    """What the figure draws: one panel per scenario that has a result (a P4G-only comparison
    gets no empty ESC panel), each with the rows' labels (``n`` dialogues under the name), our
    value and 95% CI (NaN where missing) and the paper's Table 2 value."""
    panels = []
    for scenario in ("esc", "p4g"):  # Table 2's column order
        cells = [table[row].get(scenario) for row in ROWS]
        if not any(c and c.value is not None for c in cells):
            continue
        nan = float("nan")
        panels.append({
            "scenario": scenario, "title": SCENARIOS[scenario].headline_label,
            "labels": [" ".join(x for x in LABELS[row] if x != "—") + (f"\nn={c.n}" if c and c.n else "")
                       for row, c in zip(ROWS, cells)],
            "values": [c.value if c and c.value is not None else nan for c in cells],
            "lows": [c.low if c and c.low is not None else nan for c in cells],
            "highs": [c.high if c and c.high is not None else nan for c in cells],
            "paper": [PAPER[row][PAPER_HEADLINE[scenario]] for row in ROWS]})
    return panels


def plot(table, path: str) -> None:
    """Bars per method for each scenario with a result, 95% CI whiskers and the paper's value
    beside them; a missing cell is left empty and says so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = plot_panels(table)
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.5 * max(1, len(panels)), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        x = range(len(panel["values"]))
        values = panel["values"]
        errs = [[v - lo if lo == lo else 0 for v, lo in zip(values, panel["lows"])],
                [hi - v if hi == hi else 0 for v, hi in zip(values, panel["highs"])]]
        ax.bar(x, values, yerr=errs, capsize=4, color="#4c72b0", label="this run (95% CI)")
        ax.scatter(x, panel["paper"], marker="D", facecolors="none", edgecolors="black", zorder=3, label="paper, Table 2")
        ax.set_xticks(list(x), panel["labels"], rotation=25, ha="right")
        ax.set_title(panel["title"])
        ax.legend(fontsize=8, frameon=False)
        for i, v in enumerate(values):
            if v != v:
                ax.text(i, 0, "missing", ha="center", va="bottom", fontsize=8, color="gray")
    if not panels:
        axes[0][0].text(0.5, 0.5, "no results", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
