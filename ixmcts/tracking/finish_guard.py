"""Keep a run FINISHED when ``mlflow run``'s parent process would mark it FAILED afterwards.

Ctrl-C on ``mlflow run`` reaches its whole process group. MLflow's parent process then sends
SIGTERM to the entry point, waits for it to exit, and marks the run FAILED "unless it is already
terminated". That check (``mlflow.projects._maybe_set_run_terminated``, MLflow 3.x) passes the
status *string* to ``RunStatus.is_terminated``, which expects the integer code, so it always
overwrites: a study that stopped as documented, logged all its data and ended its run FINISHED
would be shown FAILED. The parent writes only after the entry point has exited, so only a
process that outlives the entry point can have the last word: the entry point starts this one
(detached, in a session of its own, so the terminal's signals miss it) right after ending its
run. It waits for the parent to exit and, if the run is then FAILED, restores FINISHED with the
entry point's own end time and says so in the tag ``ixmcts.status_restored``.

The entry point hands over the end time it wrote: the guard needs seconds to start (importing
MLflow), and by then the parent may already have written FAILED, so the run's status when the
guard starts says nothing about how the entry point ended it.

    python -m ixmcts.tracking.finish_guard RUN_ID PARENT_PID END_TIME_MS
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

RESTORED_TAG = "ixmcts.status_restored"
REASON = ("the entry point ended this run FINISHED; mlflow run's parent, interrupted, then marked it FAILED "
          "(mlflow.projects._maybe_set_run_terminated compares a status string with integer codes)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def keep_finished(run_id: str, parent_pid: int, end_time: int, wait_s: float = 120.0, grace_s: float = 3.0,
                  poll_s: float = 0.2) -> bool:
    """Until ``parent_pid`` has exited (plus ``grace_s``, for a shell between it and the entry
    point; at most ``wait_s``), turn a FAILED status of the run that the entry point ended
    FINISHED at ``end_time`` (ms) back into FINISHED with that end time. Returns whether it did."""
    import mlflow

    client = mlflow.MlflowClient()
    restored, gone_at, deadline = False, None, time.time() + wait_s
    while time.time() < deadline:
        if gone_at is None and not _alive(parent_pid):
            gone_at = time.time()
        if client.get_run(run_id).info.status == "FAILED":
            client.set_tag(run_id, RESTORED_TAG, REASON)
            client.set_terminated(run_id, "FINISHED", end_time=end_time)
            restored = True
        if gone_at is not None and time.time() - gone_at >= grace_s:
            break
        time.sleep(poll_s)
    return restored


def start(run_id: str, parent_pid: int | None) -> None:
    """Start the guard for a run that ``mlflow run`` (the process ``parent_pid``) launched and this
    process has just ended; a no-op without such a parent (run directly, or PID 1 of a
    container) or when the run did not end FINISHED (then there is nothing to keep)."""
    if not parent_pid or parent_pid <= 1 or not _alive(parent_pid):
        return
    import mlflow

    ended = mlflow.MlflowClient().get_run(run_id).info  # read now, before the parent can overwrite it
    if ended.status != "FINISHED":
        return
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    subprocess.Popen([sys.executable, "-m", "ixmcts.tracking.finish_guard", run_id, str(parent_pid),
                      str(ended.end_time)], env=env,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


if __name__ == "__main__":
    keep_finished(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
