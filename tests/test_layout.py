"""The library's rooms depend one way (issue 13 item 5): a reader finds one concept in one place."""

import ast

from conftest import ROOT


def imported_modules(folder: str) -> dict[str, set[str]]:
    """``{file: absolute ixmcts modules it imports}`` for every Python file under ixmcts/<folder>."""
    found = {}
    for path in (ROOT / "ixmcts" / folder).rglob("*.py"):
        package = ["ixmcts", *path.relative_to(ROOT / "ixmcts").parent.parts]
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_data_does_not_import_scenarios():
    """Scenarios build on the data schema; data (loaders, samples) never needs a scenario."""
    offenders = {f: sorted(m for m in mods if m.startswith("ixmcts.scenarios")) for f, mods in imported_modules("data").items()}
    assert {f: m for f, m in offenders.items() if m} == {}


def test_the_check_sees_an_import_of_scenarios(tmp_path, monkeypatch):
    import conftest

    (tmp_path / "ixmcts" / "data").mkdir(parents=True)
    (tmp_path / "ixmcts" / "data" / "bad.py").write_text("def f():\n    from ..scenarios import get_scenario\n")
    monkeypatch.setattr(conftest, "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert imported_modules("data") == {"ixmcts/data/bad.py": {"ixmcts.scenarios"}}


def test_only_the_tracking_module_imports_mlflow():
    users = {f for folder in ("data", "scenarios", "search", "train", "evaluate", "llm") for f, mods in
             imported_modules(folder).items() if any(m == "mlflow" or m.startswith("mlflow.") for m in mods)}
    assert users == set()
