"""MLflow entry point `annotate`: PsyDTCorpus help-seeker states through an OpenAI-compatible endpoint.

    OPENAI_API_KEY=… mlflow run . -e annotate --env-manager local \
        -P input=PsyDTCorpus_train_mulit_turn_packing.json -P base_url=https://api.openai.com/v1 -P model=gpt-4o

The annotated corpus (same format, a ``state`` on each user message) is written to
``output`` and logged as a dataset; `sft -P scenario=esc -P data=<output>` trains on it.
"""

from pathlib import Path

import click
import _common  # noqa: F401  (puts this checkout on sys.path)

from ixmcts import tracking
from ixmcts.scenarios import LANGUAGES
from ixmcts.options import Command, choice, profile_option, reports_errors
from ixmcts.annotate import AnnotateConfig, annotate_corpus
from ixmcts.errors import IxmctsError


@click.command(cls=Command, help=__doc__)  # the module's description, under --help
@click.option("--input", "source", required=True, help="PsyDTCorpus JSON file")
@click.option("--output", default="", help="annotated JSON (default: <input stem>_annotated.json here)")
@click.option("--base-url", required=True, help="OpenAI-compatible API root, e.g. http://localhost:8000/v1")
@click.option("--model", default="gpt-4o", show_default=True, help="the annotating LLM (the paper used GPT-4o)")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True, help="environment variable holding the key")
@click.option("--language", default="zh", show_default=True, type=choice(LANGUAGES), help="state format language: zh (the paper's) | en")
@click.option("--max-dialogues", default=0, type=int, help="annotate only the first N (0: all)")
@click.option("--concurrency", default=4, type=int, show_default=True, help="requests in flight")
@click.option("--max-retries", default=AnnotateConfig.max_retries, type=int, show_default=True,
              help="retries of a request on a rate limit (429, waiting as Retry-After asks), 5xx or a dropped connection")
@profile_option(default="paper", help="profile tag recorded on the run", dest="profile")
@reports_errors
def main(source, output, base_url, model, api_key_env, language, max_dialogues, concurrency, max_retries, profile):
    if not Path(source).is_file():
        raise IxmctsError(f"input {source}: no such file")
    output = Path(output or f"{Path(source).stem}_annotated.json")
    config = AnnotateConfig(base_url=base_url, model=model, api_key_env=api_key_env, language=language,
                            max_dialogues=max_dialogues, concurrency=concurrency, max_retries=max_retries)
    with tracking.stage_run("annotate", "esc", profile=profile, method="annotate"):
        tracking.log_params({"input": source, "output": str(output), "base_url": base_url, "model": model,
                             "language": language, "max_dialogues": max_dialogues, "temperature": config.temperature})
        stats = annotate_corpus(source, output, config)
        tracking.log_metrics({"annotate/dialogues": stats["dialogues"], "annotate/states": stats["states"],
                              "annotate/resumed": stats["resumed"]})
        tracking.log_artifact(str(output), artifact_path="data")
    print(f"annotated {stats['states']} help-seeker states in {stats['dialogues']} dialogues → {output}")


if __name__ == "__main__":
    main()
