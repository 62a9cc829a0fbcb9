"""MLflow helpers: the only part of the library that imports MLflow (DESIGN.md §6).

One concept per module: ``runs`` (store, experiments, the stage's run, upstream runs),
``logging`` (params, metrics, curves, tags, artifacts of the active run), ``datasets``
(dataset inputs), ``models`` (adapters, loadable models). Entry points log only through
these helpers, so no rank but 0 ever opens a run; the names below are the public ones.
"""

from .datasets import log_jsonl_dataset, log_search
from .logging import log_artifact, log_curve, log_metrics, log_params, set_tags, tag_upstream
from .models import log_adapters_and_model, model_spec_of
from .runs import (TAG, configure, download, ensure_experiment, experiment_name, is_main_process, main_process_only,
                   stage_run, upstream)

__all__ = ["TAG", "configure", "download", "ensure_experiment", "experiment_name", "is_main_process", "log_adapters_and_model",
           "log_artifact", "log_curve", "log_jsonl_dataset", "log_metrics", "log_params", "log_search", "main_process_only",
           "model_spec_of", "set_tags", "stage_run", "tag_upstream", "upstream"]
