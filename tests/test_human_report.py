"""Human-evaluation statistics against hand-computed values, and Table 5 from a synthetic file."""

import csv
import subprocess
import sys

import pytest

from ixmcts.errors import IxmctsError
from ixmcts.human.report import annotation_kappa, fleiss_kappa, noise_sensitivity, read_ratings, table5, win_rates


def test_fleiss_kappa_hand_computed():
    # Fleiss (1971) / the textbook example: 10 items, 14 raters, 5 categories → κ ≈ 0.210
    counts = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
              [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(counts) == pytest.approx(0.2099, abs=1e-4)
    assert fleiss_kappa([[3, 0, 0], [0, 3, 0]]) == 1.0  # perfect agreement
    # P_i = 1/3 each, p = (1/2, 1/2, 0), P_e = 1/2 → κ = (1/3 − 1/2) / (1/2) = −1/3
    assert fleiss_kappa([[2, 1, 0], [1, 2, 0]]) == pytest.approx(-1 / 3)
    with pytest.raises(IxmctsError, match="same number"):
        fleiss_kappa([[2, 1, 0], [1, 1, 0]])


def test_annotation_kappa_takes_the_imcts_ranking_as_a_third_rater():
    rows = [{"pair_id": p, "annotator": a, "label": lab} for p, a, lab in [
        ("p1", "ann1", "a1"), ("p1", "ann2", "a1"), ("p1", "imcts", "a1"),
        ("p2", "ann1", "a2"), ("p2", "ann2", "a2"), ("p2", "imcts", "a1")]]
    assert annotation_kappa(rows, with_imcts=False) == (1.0, 2)
    kappa, n = annotation_kappa(rows)
    # counts [[3,0,0],[1,2,0]]: P = (1, 1/3), p = (2/3, 1/3, 0), P_e = 5/9 → κ = (2/3 − 5/9) / (4/9) = 1/4
    assert n == 2 and kappa == pytest.approx(0.25)
    with pytest.raises(IxmctsError, match="'maybe' is not one of"):
        annotation_kappa(rows + [{"pair_id": "p3", "annotator": "ann1", "label": "maybe"}])


def test_noise_sensitivity_spreads_ratings_and_respects_the_scale():
    mean, sd = noise_sensitivity([5.0] * 50, replicates=400)
    assert mean == pytest.approx(5.0, abs=0.05) and sd == pytest.approx((2 / 3) ** 0.5, abs=0.03)
    mean, _ = noise_sensitivity([10.0] * 50, replicates=400)  # +1 is clipped at 10
    assert mean == pytest.approx(10 - 1 / 3, abs=0.05)


def _write(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_table5_structure_and_win_rates_from_a_synthetic_ratings_file(tmp_path):
    rows = []
    for s in range(36):  # 36 sessions, each rating both arms, Aligned a little higher
        rows.append({"session_id": s, "rater_id": f"r{s % 9}", "model": "SFT", "supportiveness": 7 + s % 3, "willingness": 6 + s % 3})
        rows.append({"session_id": s, "rater_id": f"r{s % 9}", "model": "Aligned", "supportiveness": 8 + s % 3, "willingness": 6 + s % 3})
    _write(tmp_path / "ratings.csv", rows)
    ratings = read_ratings(tmp_path / "ratings.csv")
    table = {r["model"]: r for r in table5(ratings)}
    assert set(table) == {"SFT", "Aligned"} and table["SFT"]["n"] == 36
    assert table["SFT"]["supportiveness"] == pytest.approx(8.0) and table["Aligned"]["supportiveness"] == pytest.approx(9.0)
    lo, hi = table["Aligned"]["supportiveness_ci"]
    assert lo <= 9.0 <= hi and hi - lo < 1.0
    wins = win_rates(ratings, "Aligned", "SFT")
    assert wins["supportiveness"] == {"win": 1.0, "tie": 0.0, "loss": 0.0, "sessions": 36}
    assert wins["willingness"]["tie"] == 1.0

    labels = [{"pair_id": p, "annotator": a, "label": "a1" if (p + i) % 4 else "tie"} for p in range(20)
              for i, a in enumerate(["ann1", "ann2", "imcts"])]
    _write(tmp_path / "annotations.csv", labels)
    out = tmp_path / "human"
    proc = subprocess.run([sys.executable, "-m", "ixmcts.cli", "human-eval", "report", "--ratings", str(tmp_path / "ratings.csv"),
                           "--annotations", str(tmp_path / "annotations.csv"), "--output-dir", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = (out / "table5.md").read_text()
    assert "| Model | n | Supportiveness | 95% CI | ±1 noise | Willingness | 95% CI | ±1 noise |" in text
    assert "| Aligned | 36 | 9.00 |" in text and "Fleiss' kappa (annotators + i×MCTS)" in text
    assert (out / "figure3.png").stat().st_size > 1000


def test_a_rating_off_the_scale_names_its_line(tmp_path):
    _write(tmp_path / "r.csv", [{"session_id": 1, "rater_id": "a", "model": "SFT", "supportiveness": 11, "willingness": 5}])
    with pytest.raises(IxmctsError, match=r"line 2: supportiveness 11 is outside the 1–10 scale"):
        read_ratings(tmp_path / "r.csv")
