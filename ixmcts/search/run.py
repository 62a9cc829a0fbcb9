"""Run one search from plain parameters: resolve the scenario, conditions and models,
run the engine (resuming from a checkpoint), and write D_p and the trees. No MLflow here."""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import median

from tqdm.auto import tqdm

from ..data import load_conditions
from ..data.schema import Condition
from ..errors import IxmctsError
from ..io import atomic_folder, cache_dir, check_output_folder, code_fingerprint, require_writable, write_jsonl
from ..llm import BACKENDS
from ..llm.backend import POLICY_SAMPLING, SIMULATOR_SAMPLING
from ..llm.models import ModelSpec
from ..options import setting
from ..scenarios import LANGUAGES, get_scenario
from .engine import SearchConfig, SearchEngine
from .pairs import extract_pairs

DP_FILE, TREES_FILE, CONDITIONS_FILE, SUMMARY_FILE = "dp.jsonl", "trees.jsonl.gz", "conditions.jsonl", "summary.json"
OUTPUT_FILES = {DP_FILE, TREES_FILE, CONDITIONS_FILE, SUMMARY_FILE}  # a search's output folder holds these only


@dataclass
class SearchParams:
    """Everything a search run depends on (the ``search`` entry point's parameters). Defaults:
    the paper's (§4.6: K 81, e 3, c √2, T the scenario's); the backbone, conditions and prompt
    language the paper used per scenario are ``profiles.paper_settings``' (these defaults are
    what the library takes when called directly)."""

    scenario: str = setting("p4g", "esc (emotional support) or p4g (persuasion for good)")
    policy_model: str = setting("smollm2-135m-instruct", "policy LLM π_θ: smollm2-135m-instruct (embedded default), tiny, "
                                                         "a local folder or a hub id (paper: Qwen2.5-7B / Llama-3.2-3B)")
    simulator_model: str = setting("", "user simulator LLM (empty: the policy model, prompted as the user)")
    conditions: str = setting("sample", "user conditions U: sample | p4g: synth, corpus | a PsyQA .json or conditions "
                                        ".jsonl path (paper: ~700 synthesized personas / 4,000 PsyQA descriptions)")
    num_conditions: int = setting(4, "user conditions (trees) searched, from the start of the pool (at least 1)")
    data_dir: str = setting("", "P4G corpus folder (full_dialog.csv, full_info.csv) for conditions=synth|corpus")
    language: str = setting("en", "ESC prompt language: en, or zh (the paper's)", choices=LANGUAGES)
    K: int = setting(SearchConfig.K, "K: live model nodes kept per depth per tree (paper 81, §4.6)")
    e: int = setting(SearchConfig.e, "e: policy samples per expansion (paper 3, §4.6)")
    T: int = setting(0, "T: maximum depth in policy turns; 0 = the scenario's (paper: ESC 25, P4G 15)")
    c: float = setting(SearchConfig.c, "c: UCB exploration constant (paper √2)")
    gamma: float = setting(0.9, "γ: discount of P4G's accumulated sentiment pruning score (§4.5)")
    budget: int = setting(0, "trajectories (iterations) per tree; 0 = K")
    parallel: int = setting(1, "trajectories in flight per tree (virtual loss)")
    closing: bool = setting(SearchConfig.closing, "at depth T ask the scenario's closing question (P4G: the donation; ESC: what is left "
                                   "unexpressed) instead of rewarding 0 (not in the paper: small models never end on their own)")
    seed: int = setting(0, "random seed (same seed + inputs → same trees on CPU)")
    max_new_tokens: int = setting(POLICY_SAMPLING.max_new_tokens, "max new tokens per generated turn (paper 512)")
    pair_margin: float = setting(0.0, "minimum |Q/N| difference for a preference pair")
    shard: int = setting(0, "this run's shard index: it searches conditions shard, shard+num_shards, … of the num_conditions")
    num_shards: int = setting(1, "number of shards the conditions are split into")
    threads: int = setting(0, "torch CPU threads (0 = torch's default)")
    batch_size: int = setting(16, "prompts per generate() batch")
    backend: str = setting("transformers", "generation backend: transformers (any machine) | vllm (CUDA, prefix caching, LoRA)",
                           choices=BACKENDS)
    checkpoint_dir: str = setting("", "checkpoint folder (empty: $IXMCTS_CACHE/search/<hash of these settings>)")

    def __post_init__(self):
        if self.num_shards < 1 or not 0 <= self.shard < self.num_shards:
            raise IxmctsError(f"shard must be in [0, num_shards); got shard={self.shard} num_shards={self.num_shards}")
        from ..llm import check_backend

        check_backend(self.backend)
        if self.max_new_tokens < 1:
            raise IxmctsError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        # refused here, before any model loads (nan passes every comparison, so ask for finite numbers)
        for name in ("c", "gamma", "pair_margin"):
            if not math.isfinite(getattr(self, name)):
                raise IxmctsError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.pair_margin < 0:
            raise IxmctsError(f"pair_margin must be at least 0, got {self.pair_margin}")
        for name, least in (("num_conditions", 1), ("batch_size", 1), ("threads", 0)):
            if getattr(self, name) < least:
                raise IxmctsError(f"{name} must be at least {least}, got {getattr(self, name)}")

    def search_config(self, default_depth: int) -> SearchConfig:
        return SearchConfig(
            K=self.K, e=self.e, T=self.T or default_depth, c=self.c, budget=self.budget or None,
            parallel=self.parallel, closing=self.closing, seed=self.seed,
            policy_sampling=replace(POLICY_SAMPLING, max_new_tokens=self.max_new_tokens),
            simulator_sampling=replace(SIMULATOR_SAMPLING, max_new_tokens=self.max_new_tokens),
        )

    def digest(self, conditions: list[Condition]) -> str:
        """Identifies a search: its settings, its conditions and the library's code (prompts,
        parsers and the engine live there), but not threads or batch size."""
        key = {k: v for k, v in asdict(self).items() if k not in ("threads", "batch_size", "checkpoint_dir")}
        key["conditions_text"] = [c.to_dict() for c in conditions]
        key["code"] = code_fingerprint()
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class SearchOutcome:
    output_dir: Path
    config: SearchConfig
    conditions: list[Condition]
    pairs: int
    metrics: dict = field(default_factory=dict)


def prepare_search(params: SearchParams):
    """Validate everything that can be checked without models (fast, before any run)."""
    scenario = get_scenario(params.scenario, language=params.language, gamma=params.gamma)
    config = params.search_config(scenario.max_depth)
    conditions = load_conditions(params.scenario, params.conditions, None, data_dir=params.data_dir or None, seed=params.seed)
    # num_conditions counts the whole search; shard i takes conditions i, i+n, … of those
    conditions = conditions[: params.num_conditions][params.shard :: params.num_shards]
    if not conditions:
        raise IxmctsError(f"shard {params.shard} of {params.num_shards} has no user conditions")
    return scenario, config, conditions


def run_search(params: SearchParams, output_dir: str | Path, progress: bool = True,
               policy_spec: ModelSpec | None = None, simulator_spec: ModelSpec | None = None) -> SearchOutcome:
    """``policy_spec``/``simulator_spec``: SFT models (base + adapters); default: the named
    base models, prompted by the scenario."""
    from ..llm import make_backends

    scenario, config, conditions = prepare_search(params)
    output_dir = Path(output_dir)
    check_output_folder(output_dir, OUTPUT_FILES)  # before the search, not after it
    policy_spec = policy_spec or ModelSpec(params.policy_model)
    simulator_spec = simulator_spec or ModelSpec(params.simulator_model or params.policy_model)
    policy_spec.check(), simulator_spec.check()
    key = f"{params.digest(conditions)}-{policy_spec.digest()[:6]}{simulator_spec.digest()[:6]}"
    # the folder is made at the first save, so a model that fails to load leaves none behind
    if params.checkpoint_dir:
        require_writable(params.checkpoint_dir, "checkpoint_dir")
    checkpoint = Path(params.checkpoint_dir or cache_dir("search", key, create=False)) / "checkpoint.json.gz"
    backends = make_backends({"policy": policy_spec, "simulator": simulator_spec}, params.backend,
                             batch_size=params.batch_size, max_rows=0, threads=params.threads or None)
    policy, simulator = backends["policy"], backends["simulator"]

    total = len(conditions) * config.trajectories
    bars = {
        "trajectories": tqdm(total=total, desc="trajectories", unit="traj", disable=not progress, position=0),
        "trees": tqdm(total=len(conditions), desc="trees done", unit="tree", disable=not progress, position=1),
    }

    def on_step(engine: SearchEngine) -> None:
        bars["trajectories"].n = engine.stats.trajectories + engine.stats.pruned_trajectories  # finished or pruned
        bars["trees"].n = engine.trees_done
        bars["trajectories"].set_postfix(step=engine.stats.steps, nodes=sum(len(t.nodes) for t in engine.trees),
                                         engaged=engine.stats.engaged_trajectories)
        for bar in bars.values():
            bar.refresh()

    start = time.perf_counter()
    engine = SearchEngine(scenario, policy, simulator, conditions, config, checkpoint=checkpoint, on_step=on_step)
    resumed_at = engine.stats.steps
    resumed_generation_sec = engine.stats.generation_sec  # spent by earlier processes: not in this wall time
    if resumed_at:
        tqdm.write(f"resuming the search from {checkpoint} at step {resumed_at}", file=sys.stderr)
    engine.run()
    on_step(engine)
    for bar in bars.values():
        bar.close()
    wall = time.perf_counter() - start

    pairs = extract_pairs(engine.trees, scenario, margin=params.pair_margin)
    gaps = [p["chosen_value"] - p["rejected_value"] for p in pairs]
    s = engine.stats
    metrics = {
        "search/trees": len(engine.trees), "search/nodes": sum(len(t.nodes) for t in engine.trees),
        "search/llm_calls": s.llm_calls, "search/generations": s.generations, "search/generated_tokens": s.generated_tokens,
        "search/pairs": len(pairs), "search/trajectories": s.trajectories,
        "search/engaged_trajectories": s.engaged_trajectories, "search/pruned_trajectories": s.pruned_trajectories,
        "search/ended_without_state": s.ended_without_state,
        # distinct finished conversations; search/trajectories also counts re-visits of a finished one
        "search/conversations": sum(n.terminal for t in engine.trees for n in t.nodes),
        "search/steps": s.steps, "search/resumed_at_step": resumed_at,
        "search/wall_sec": wall,  # this process's; generation_share is of the same time
        "search/generation_share": (s.generation_sec - resumed_generation_sec) / wall if wall else 0.0,
        "search/mean_reward": sum(t.root.Q for t in engine.trees) / max(1, sum(t.root.N for t in engine.trees)),
        # how far apart a pair's values are, on the engagement scale: gaps far below the
        # simulator's own run-to-run spread make pairs a reward model cannot learn from
        "search/pair_value_gap_median": median(gaps) if gaps else float("nan"),
    }
    try:
        with atomic_folder(output_dir) as staging:  # all four files replace the previous ones at once, or none does
            write_jsonl(staging / CONDITIONS_FILE, (c.to_dict() for c in conditions))
            write_jsonl(staging / TREES_FILE, (t.to_dict() for t in engine.trees))
            write_jsonl(staging / DP_FILE, pairs)
            (staging / SUMMARY_FILE).write_text(json.dumps({"metrics": metrics, "config": config.to_dict(),
                                                            "params": asdict(params), "checkpoint": str(checkpoint)}, indent=2))
    except OSError as exc:
        raise IxmctsError(f"{output_dir}: could not write the search's outputs ({exc.strerror or exc}); the previous outputs "
                          f"there are unchanged; rerun the same command to write them from the checkpoint {checkpoint}") from None
    return SearchOutcome(output_dir, config, conditions, len(pairs), metrics)
