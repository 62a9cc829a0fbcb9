"""MLflow helpers: the only part of the library that imports MLflow (DESIGN.md §6).

One concept per module: ``runs`` (store, experiments, the stage's run, upstream runs and
``models:/`` references), ``logging`` (params, metrics, training steps, tags, artifacts of the
active run), ``datasets`` (dataset inputs whose sources stay), ``models`` (adapters, loadable
models, the registry). Entry points log only through these helpers, so no rank but 0 ever
opens a run; the names below are the public ones.
"""

from .datasets import log_jsonl_dataset, log_search, log_upstream_dataset
from .logging import (log_artifact, log_curve, log_finals, log_metrics, log_params, log_training_step, set_tags,
                      tag_upstream)
from .models import log_adapters_and_model, log_reward_model, logged_model_id, model_spec_of, registered_name
from .runs import (TAG, configure, download, ensure_experiment, experiment_name, find_runs, is_main_process,
                   main_process_only, run_entry_point, run_id_of, stage_run, upstream)

__all__ = ["TAG", "configure", "download", "ensure_experiment", "experiment_name", "find_runs", "is_main_process",
           "log_adapters_and_model", "log_artifact", "log_curve", "log_finals", "log_jsonl_dataset", "log_metrics",
           "log_params", "log_reward_model", "log_search", "log_training_step", "log_upstream_dataset", "logged_model_id",
           "main_process_only", "model_spec_of", "registered_name", "run_entry_point", "run_id_of", "set_tags", "stage_run",
           "tag_upstream", "upstream"]
