"""What the multi-process tests share: starting a launcher in its own session, and writing a rank's report.

A launcher (torchrun, accelerate launch) is started in its own session so that a hung run is ended
with every process it started, not just the launcher. A rank's report is written beside and then
renamed into place, so a report is either complete or absent: the tests read outputs, because about
1 gloo run in 10 aborts at exit after finishing its work.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path


def run_group(cmd: list[str], env: dict[str, str], timeout: int, what: str, cwd=None) -> subprocess.CompletedProcess:
    """Run ``cmd`` to completion, or kill its whole process group after ``timeout`` s and fail the test."""
    import pytest

    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{what} did not finish in {timeout}s; stderr tail:\n{stderr[-4000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def write_report(out: Path, report: dict) -> None:
    """``out/rank<N>.json``, complete or absent; then flush, as the process may be torn down hard at exit."""
    path = out / f"rank{report['env_rank']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.rename(path)
    sys.stdout.flush()
    sys.stderr.flush()
