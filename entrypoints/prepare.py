"""MLflow entry point `prepare`: download a corpus (or take a local folder) and verify it.

    mlflow run . -e prepare --env-manager local -P corpus=p4g                       # → data/p4g/
    mlflow run . -e prepare --env-manager local -P corpus=p4g -P path=../shared/data/p4g
    mlflow run . -e prepare --env-manager local -P corpus=psyqa -P path=/data/psyqa

Checksums are checked where upstream's are pinned (ixmcts/data/sources.py); every file is
parsed with the project's loader; the run records the folder, hashes and counts.
"""

import click
import _common  # noqa: F401  (puts this checkout on sys.path)

from ixmcts import tracking
from ixmcts.data.sources import CORPORA, prepare_corpus
from ixmcts.options import Command, choice, reports_errors


@click.command(cls=Command, help=__doc__)  # the module's description, under --help
@click.option("--corpus", required=True, type=choice(CORPORA), help="the corpus to download or verify")
@click.option("--path", default="", help="a local folder holding the corpus files (no download)")
@click.option("--output-dir", default="data", show_default=True, help="where downloads go (<output-dir>/<corpus>/)")
@click.option("--mirror", default="", help="URL prefix serving the same file names (instead of upstream)")
@reports_errors
def main(corpus, path, output_dir, mirror):
    scenario = "p4g" if corpus == "p4g" else "esc"
    info = prepare_corpus(corpus, output_dir, path=path, mirror=mirror)  # fails before a run is created
    with tracking.stage_run("prepare", scenario, profile="-", method=corpus):
        tracking.log_params({"corpus": corpus, "path": path, "output_dir": output_dir, "mirror": mirror, "folder": info["folder"]})
        tracking.set_tags({f"sha256.{name}": digest for name, digest in info["sha256"].items()})
        tracking.log_metrics({f"prepare/{k}".replace(".json", ""): v for k, v in info["counts"].items()})
    print(f"{corpus}: {info['folder']} verified ({info['counts']})")


if __name__ == "__main__":
    main()
