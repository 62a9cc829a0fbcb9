import csv
import json
import shutil

import pytest

from conftest import P4G_REAL
from ixmcts.data import MODEL, USER, load_conditions, load_dialogues
from ixmcts.data.esc import load_psydt, load_psyqa
from ixmcts.data.p4g import PERSONA_COLUMNS, load_p4g, read_info, synthesize_personas
from ixmcts.data.samples import P4G_DIR, P4G_FILES
from ixmcts.errors import IxmctsError

real = pytest.mark.skipif(not (P4G_REAL / "full_dialog.csv").exists(), reason="no ../shared/data/p4g here")


@pytest.mark.parametrize("scenario", ["p4g", "esc"])
def test_bundled_samples_load(scenario):
    dialogues = load_dialogues(scenario, "sample")
    conditions = load_conditions(scenario, "sample")
    assert len(dialogues) == 30 and len(conditions) == 30
    for d in dialogues:
        assert d.turns and all(t.text for t in d.turns)
        assert all(a.role != b.role for a, b in zip(d.turns, d.turns[1:]))  # speakers alternate
    assert len({c.id for c in conditions}) == 30 and all(c.description for c in conditions)
    assert dialogues[0].turns[0].role == (MODEL if scenario == "p4g" else USER)


def test_p4g_sample_has_personas_and_donations():
    dialogues = load_dialogues("p4g", "sample")
    assert all(d.condition.attributes and d.meta["donation"] is not None for d in dialogues)
    assert {d.meta["donation"] for d in dialogues} >= {0.0, 0.5, 1.0, 2.0}


@real
def test_real_p4g_corpus():
    dialogues = load_p4g(P4G_REAL)
    assert len(dialogues) == 1017
    assert all(d.meta["donation"] is not None and 0.0 <= d.meta["donation"] <= 2.0 for d in dialogues)
    assert sum(d.meta["donation"] == 0 for d in dialogues) == 472  # SOURCE.md: 472 persuadees gave 0
    assert max(d.meta["donation_raw"] for d in dialogues) > 2  # the raw outliers are kept in meta, clipped in donation
    assert sum(bool(d.condition.attributes.get("extrovert.x")) for d in dialogues) >= 1017 - 7
    for d in dialogues:
        assert all(a.role != b.role for a, b in zip(d.turns, d.turns[1:]))  # split Units are merged
    first = next(d for d in dialogues if d.id == "20180904-045349_715_live")
    assert first.turns[0].text == "Good morning. How are you doing today?" and first.turns[0].role == MODEL
    assert "50-year-old woman" in first.condition.description


@real
def test_persona_synthesis_from_the_real_corpus():
    info = read_info(P4G_REAL)
    personas = synthesize_personas(info, count=700, seed=0)
    assert len(personas) == 700 and len({p.description for p in personas}) == 700
    pools = {c: {r[c] for r in info if r["role"] == 1} for c in PERSONA_COLUMNS}
    assert all(v in pools[c] for p in personas for c, v in p.attributes.items())
    assert synthesize_personas(info, count=5, seed=1)[0].to_dict() == synthesize_personas(info, count=5, seed=1)[0].to_dict()
    assert len(load_conditions("p4g", "synth", 700, data_dir=str(P4G_REAL))) == 700


def _copy_p4g(tmp_path):
    """The bundled sample under the corpus's own file names."""
    d = tmp_path / "p4g"
    d.mkdir()
    shutil.copyfile(P4G_DIR / P4G_FILES["dialog_csv"], d / "full_dialog.csv")
    shutil.copyfile(P4G_DIR / P4G_FILES["info_csv"], d / "full_info.csv")
    return d


def test_p4g_missing_column_is_named(tmp_path):
    d = _copy_p4g(tmp_path)
    rows = list(csv.DictReader(open(d / "full_dialog.csv")))
    with open(d / "full_dialog.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["Unit", "Turn", "B2"])
        w.writeheader()
        w.writerows({k: r[k] for k in ("Unit", "Turn", "B2")} for r in rows)
    with pytest.raises(IxmctsError, match=r"full_dialog.csv: missing column\(s\) B4"):
        load_p4g(d)


def test_p4g_empty_dialogue_is_named(tmp_path):
    d = _copy_p4g(tmp_path)
    with open(d / "full_dialog.csv", "a", newline="") as fh:
        csv.writer(fh).writerow([99999, "   ", 0, 0, "empty-dialogue-id"])
    with pytest.raises(IxmctsError, match="dialogue empty-dialogue-id: empty dialogue"):
        load_p4g(d)


def test_p4g_bad_number_is_named(tmp_path):
    d = _copy_p4g(tmp_path)
    text = (d / "full_dialog.csv").read_text().replace(",0,0,20240101-000000_sample", ",zero,0,20240101-000000_sample", 1)
    (d / "full_dialog.csv").write_text(text)
    with pytest.raises(IxmctsError, match=r"full_dialog.csv: line 2: column Turn is not a number"):
        load_p4g(d)


def test_malformed_json_is_named(tmp_path):
    bad = tmp_path / "psydt.json"
    bad.write_text('[{"id": 1, "messages": [}')
    with pytest.raises(IxmctsError, match="psydt.json: malformed JSON at line 1"):
        load_psydt(bad)


def test_psydt_empty_dialogue_and_missing_field(tmp_path):
    f = tmp_path / "psydt.json"
    f.write_text(json.dumps([{"id": 7, "messages": [{"role": "system", "content": "x"}]}]))
    with pytest.raises(IxmctsError, match=r"record 0 \(id=7\): empty dialogue"):
        load_psydt(f)
    f.write_text(json.dumps([{"id": 7}]))
    with pytest.raises(IxmctsError, match=r"record 0: missing field\(s\) messages"):
        load_psydt(f)


def test_psyqa_conditions(tmp_path):
    f = tmp_path / "psyqa.json"
    f.write_text(json.dumps([{"questionID": 3, "question": "q", "description": "I feel lost.", "keywords": "a,b", "answers": []}]))
    (c,) = load_conditions("esc", str(f))
    assert (c.id, c.description, c.attributes["keywords"]) == ("psyqa-3", "I feel lost.", "a,b")
    f.write_text(json.dumps({"questionID": 3}))
    with pytest.raises(IxmctsError, match="expected a JSON list"):
        load_psyqa(f)


def test_unknown_sources():
    with pytest.raises(IxmctsError, match="unknown scenario"):
        load_conditions("chess")
    with pytest.raises(IxmctsError, match="unknown esc conditions source 'synth'"):
        load_conditions("esc", "synth")
    with pytest.raises(IxmctsError, match="count must be positive"):
        load_conditions("p4g", "sample", 0)


def test_psydt_condition_is_a_description_of_the_help_seeker(tmp_path):
    """§4.4: the simulator is conditioned on a description of the help-seeker's troubles,
    feelings and thoughts (PsyQA's ``description``) in search and evaluation, so SFT
    conditions it on the same kind of text: the record's own description, else the
    help-seeker's first utterances (never the supporter's), about a description's length."""
    seeker = ["My exam went badly.", "I feel ashamed in front of my parents.", "x" * 400]
    msgs = [{"role": "system", "content": "sys"}]
    for text in seeker:
        msgs += [{"role": "user", "content": text}, {"role": "assistant", "content": "Supporter words."}]
    f = tmp_path / "psydt.json"
    f.write_text(json.dumps([{"id": 1, "normalizedTag": "t", "messages": msgs},
                             {"id": 2, "normalizedTag": "t", "messages": msgs, "description": "I failed and feel lost."}]))
    first, second = load_psydt(f)
    assert first.condition.description == "My exam went badly. I feel ashamed in front of my parents."
    assert second.condition.description == "I failed and feel lost."
