"""Table 2 rendering from fake evaluation results."""

from ixmcts.evaluate.compare import Result, build_table, plot, to_csv, to_latex, to_markdown


def fake(scenario, method, reward, value, run_id, outcomes):
    key = "eval/engaged_rate" if scenario == "esc" else "eval/donation_mean"
    return Result(scenario, method, reward, {key: value, key + "_ci_low": value - 0.1, key + "_ci_high": value + 0.1,
                                             "eval/turns_mean": 18.0}, run_id, outcomes)


def test_table_with_a_missing_cell_and_paired_tests(tmp_path):
    same = {f"c{i}": 0.25 for i in range(20)}
    better = {f"c{i}": 1.0 for i in range(20)}
    results = [fake("p4g", "sft", "-", 0.5, "r1", same), fake("p4g", "aligned", "engagement", 2.0, "r2", better),
               fake("p4g", "bon", "engagement", 0.5, "r3", dict(same)), fake("esc", "sft", "-", 0.6, "r4", {})]
    table = build_table(results)
    assert table[("aligned", "engagement")]["p4g"].p_vs_sft < 0.01
    assert table[("bon", "engagement")]["p4g"].p_vs_sft == 1.0
    md = to_markdown(table, "profile cpu")
    lines = md.splitlines()
    aligned = next(l for l in lines if l.startswith("| Aligned"))
    assert "2.00 [1.90, 2.10]" in aligned and "80.47%" in aligned and "1.29" in aligned  # ours beside the paper's
    knowledge = next(l for l in lines if "| Knowledge |" in l)
    assert knowledge.split(" | ")[2] == "—" and knowledge.split(" | ")[6] == "—"  # missing stays missing
    assert "60.00% [50.00%, 70.00%]" in next(l for l in lines if l.startswith("| SFT"))
    assert to_csv(table).count("\n") == 6 and "\\toprule" in to_latex(table)
    plot(table, str(tmp_path / "table2.png"))
    assert (tmp_path / "table2.png").stat().st_size > 1000


def test_the_table_says_how_many_dialogues_each_method_had():
    """Issue 17: BoN may be evaluated on fewer dialogues than SFT and Aligned; the table says so."""
    from ixmcts.evaluate.compare import HEADER

    sft = fake("p4g", "sft", "-", 0.5, "r1", {f"c{i}": 0.25 for i in range(128)})
    sft.metrics["eval/interactions"] = 128
    bon = fake("p4g", "bon", "strategy", 0.6, "r2", {f"c{i}": 0.3 for i in range(64)})
    bon.metrics["eval/interactions"] = 64
    aligned = fake("p4g", "aligned", "engagement", 0.7, "r3", {f"c{i}": 0.35 for i in range(128)})  # no metric: outcomes
    lines = to_markdown(build_table([sft, bon, aligned])).splitlines()
    column = HEADER.index("P4G n")
    # rows: SFT, BoN strategy, BoN knowledge (not evaluated), BoN engagement (not evaluated), Aligned
    assert [l.strip("|").split(" | ")[column].strip() for l in lines[2:]] == ["128", "64", "—", "—", "128"]


def test_the_figure_has_a_panel_per_scenario_with_results_and_the_papers_values():
    """A P4G-only comparison (repro-cpu) draws one panel, not an empty ESC one; each bar carries
    its dialogue count and stands beside the paper's Table 2 donation (SFT 0.58, BoN 0.63 / 0.67 /
    0.73, Aligned 1.29)."""
    from ixmcts.evaluate.compare import plot_panels

    sft = fake("p4g", "sft", "-", 0.27, "r1", {})
    sft.metrics["eval/interactions"] = 128
    aligned = fake("p4g", "aligned", "engagement", 0.19, "r2", {})
    aligned.metrics["eval/interactions"] = 128
    panels = plot_panels(build_table([sft, aligned]))
    assert [p["scenario"] for p in panels] == ["p4g"]
    (p4g,) = panels
    assert p4g["paper"] == [0.58, 0.63, 0.67, 0.73, 1.29]
    assert p4g["values"][0] == 0.27 and p4g["values"][4] == 0.19 and p4g["values"][1] != p4g["values"][1]  # BoN missing: NaN
    assert p4g["labels"][0] == "SFT\nn=128" and p4g["labels"][1] == "BoN Strategy"
    both = plot_panels(build_table([sft, fake("esc", "sft", "-", 0.6, "r3", {})]))
    assert [p["scenario"] for p in both] == ["esc", "p4g"] and both[0]["paper"][0] == 0.6406
