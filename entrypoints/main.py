"""MLflow entry point `main`: the whole pipeline for one scenario and profile, as child runs.

    mlflow run . -e main --env-manager local -P scenario=p4g

sft (policy, simulator) → search → reward → preference → align → evaluate (SFT, BoN ×3,
Aligned) → compare. Like MLflow's multistep_workflow example, a finished child run with
the same entry point, parameters and code version is reused instead of recomputed
(``-P force=true`` recomputes). Every stage gets its full plan (``ixmcts plan`` prints the
same JSON, logged here as ``plan.json`` before any stage runs): the profile's settings over
the paper's, ``-P overrides='{"sft": {"max_steps": 6}}'`` on top. An evaluation whose
conditions overlap the search's fails here, before any run is created.
"""

import json
import shutil
import tempfile
from pathlib import Path

import click
import _common  # noqa: F401  (puts this checkout on sys.path)

from ixmcts import tracking
from ixmcts.cli import parse_overrides
from ixmcts.io import code_fingerprint
from ixmcts.options import Command, flag, profile_option, reports_errors, scenario_option
from ixmcts.profiles import plan

PROJECT = str(Path(__file__).resolve().parents[1])
EVALUATIONS = [("sft", "-"), ("bon", "strategy"), ("bon", "knowledge"), ("bon", "engagement"), ("aligned", "engagement")]


def _logged(value: str | None) -> str:
    """A parameter as ``mlflow run`` logged it: an empty value shows up shell-quoted (``''``)."""
    return "" if value in (None, "''", '""') else value


def find_finished(experiment_id: str, entry_point: str, params: dict, code: str):
    """A FINISHED run of ``entry_point`` with exactly these parameters and this code version."""
    query = (f"tags.`mlflow.project.entryPoint` = '{entry_point}' and tags.`ixmcts.code` = '{code}' "
             "and attributes.status = 'FINISHED'")
    for run in tracking.find_runs(query, experiment_id=experiment_id):
        if all(_logged(run.data.params.get(k)) == str(v) for k, v in params.items()):
            return run
    return None


def run_stage(label: str, entry_point: str, params: dict, experiment_id: str, force: bool, code: str) -> str:
    params = {k: str(v) for k, v in params.items()}
    if not force:
        found = find_finished(experiment_id, entry_point, params, code)
        if found:
            print(f"[main] {label}: reusing finished run {found.info.run_id} (same parameters and code)", flush=True)
            return found.info.run_id
    print(f"[main] {label}: running {entry_point} {params}", flush=True)
    return tracking.run_entry_point(PROJECT, entry_point, params, experiment_id)


@click.command(cls=Command, help=__doc__)  # the module's description, under --help
@scenario_option()
@profile_option(help="the settings every stage starts from (ixmcts.profiles; `ixmcts plan` prints them)")
@flag("force", False, "recompute every stage (default: reuse a finished run with the same parameters and code)")
@click.option("--overrides", default="{}", help='JSON: extra parameters per stage, e.g. {"sft": {"max_steps": 6}}')
@click.option("--data-dir", default="", help="the corpus folder for profiles that read it (default: $IXMCTS_P4G_DIR / $IXMCTS_ESC_DIR)")
@click.option("--output-dir", default="results", show_default=True, help="where Table 2 is copied (also in the run's artifacts)")
@reports_errors
def main(scenario, profile_name, force, overrides, data_dir, output_dir):
    resolved = plan(scenario, profile_name, data_dir, parse_overrides(overrides), require_data=True)  # fails before any run
    code = code_fingerprint()  # every stage run is tagged ixmcts.code with the same hash
    common = {"scenario": scenario, "profile": profile_name}
    with tracking.stage_run("main", scenario, profile=profile_name, method="pipeline") as parent:
        with tempfile.TemporaryDirectory(prefix="ixmcts-plan-") as tmp:
            (Path(tmp) / "plan.json").write_text(json.dumps(resolved, indent=2, ensure_ascii=False), encoding="utf-8")
            tracking.log_artifact(str(Path(tmp) / "plan.json"))
        exp = parent.info.experiment_id

        def stage(label: str, entry_point: str, params: dict, key: str | None = None) -> str:
            """Run (or reuse) one stage with its plan step's settings (``key``: a variant step)."""
            return run_stage(label, entry_point, {**common, **resolved[key or entry_point], **params}, exp, force, code)

        policy = stage("sft policy", "sft", {"role": "policy"})
        simulator = stage("sft simulator", "sft", {"role": "simulator"}, key="sft_simulator")
        search = stage("search", "search", {"policy_run": policy, "simulator_run": simulator})
        reward = stage("reward", "reward", {"search_run": search})
        preference = stage("preference", "preference", {"policy_run": policy, "reward_run": reward})
        align = stage("align", "align", {"policy_run": policy, "preference_run": preference})
        evaluations = []
        for method, kind in EVALUATIONS:
            params = {"method": method, "simulator_run": simulator, "reward": "engagement" if kind == "-" else kind}
            params.update({"aligned_run": align} if method == "aligned" else {"policy_run": policy})
            if method == "bon" and kind == "engagement":
                params["reward_run"] = reward
            evaluations.append(stage(f"evaluate {method}/{kind}", "evaluate", params, key="evaluate_bon" if method == "bon" else None))
        compare = run_stage("compare", "compare", {"profile": profile_name, "scenarios": scenario, "runs": ",".join(evaluations),
                                                   "output_dir": ""}, exp, force, code)
        tracking.tag_upstream(policy=policy, simulator=simulator, search=search, reward=reward, preference=preference,
                              align=align, compare=compare)
        with tempfile.TemporaryDirectory() as tmp:
            local = tracking.download(compare, "results", tmp)
            out = Path(output_dir)
            out.mkdir(parents=True, exist_ok=True)
            for f in Path(local).iterdir():
                shutil.copyfile(f, out / f.name)
                tracking.log_artifact(str(f), artifact_path="results")
        print((out / "table2.md").read_text())
        print(f"[main] pipeline run {parent.info.run_id}: Table 2 in {out}/ and in the run's artifacts")


if __name__ == "__main__":
    main()
