"""The panel's warm worker on real processes: `neonet worker` runs real `neonet` commands one after
another in one process (same events, error lines and exit codes as a cold `neonet`), a Job runs
through it exactly as through a cold process, Cancel kills it and the next job starts a new one,
and a busy worker hands a second command to a cold process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "NeoNetSlicer")) if p not in sys.path]

from NeoNetSlicerLib.jobs import Job, JobError  # noqa: E402
from NeoNetSlicerLib.runner import CLIRunner, cli_command, library_env  # noqa: E402
from NeoNetSlicerLib.worker import WarmWorker, WorkerRun  # noqa: E402

DEMO_BUNDLE = ROOT / "Resources" / "Models" / "neonet-demo"  # the shipped demo bundle
TIMEOUT = 120  # s: the worker imports torch and MONAI on a shared 2-core machine


def phantom_args(out: Path, cases: int = 2) -> list[str]:
    return ["phantom", "--out", str(out), "--cases", str(cases), "--positives", "1", "--size", "32", "32", "12", "--seed", "3"]


@pytest.fixture
def worker():
    w = WarmWorker().start()
    yield w
    w.stop()


def test_the_worker_protocol_on_stdin_and_stdout(tmp_path):
    requests = [{"argv": phantom_args(tmp_path / "p")}, {"argv": ["predict", "--bundle", str(tmp_path / "none"), "--image", "x.nrrd",
                                                                  "--out", str(tmp_path / "o")]}, "not json"]
    lines = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in requests) + "\n"
    done = subprocess.run(cli_command(["worker"]), input=lines, capture_output=True, text=True, env=library_env(), timeout=TIMEOUT)
    events = [json.loads(line) for line in done.stdout.splitlines()]  # every stdout line is one JSON object
    assert done.returncode == 0 and events[0]["event"] == "worker_ready"
    ends = [i for i, e in enumerate(events) if e["event"] == "job_end"]
    assert [events[i]["returncode"] for i in ends] == [0, 1, 2]
    first, second, third = events[1:ends[0]], events[ends[0] + 1:ends[1]], events[ends[1] + 1:ends[2]]
    assert any(e["event"] == "progress" and e["stage"] == "phantom" for e in first)
    assert (tmp_path / "p" / "manifest.csv").exists()
    assert [e["line"] for e in second if e["event"] == "stderr"][-1].startswith("neonet predict: error: ")
    assert third == [{"event": "stderr", "line": "neonet worker: error: not a request: not json"}]


def test_commands_run_one_after_another_in_one_warm_process(worker, tmp_path):
    first = worker.submit(phantom_args(tmp_path / "a"))
    assert isinstance(first, WorkerRun)
    result = first.wait(timeout=TIMEOUT)
    assert result.ok and any(e.get("stage") == "phantom" for e in result.events) and worker.ready
    pid = worker.pid
    failed = worker.submit(["predict", "--bundle", str(tmp_path / "none"), "--image", "x.nrrd", "--out", str(tmp_path / "o")]).wait(timeout=TIMEOUT)
    assert failed.returncode == 1 and not failed.ok and "no such bundle" in failed.error_line
    assert any(line.startswith("stderr: neonet predict: error") for line in failed.log)
    again = worker.submit(phantom_args(tmp_path / "b")).wait(timeout=TIMEOUT)
    assert again.ok and worker.pid == pid and worker.alive  # the same process served all three
    same = [sorted(p.name for p in (tmp_path / d).iterdir()) for d in ("a", "b")]
    assert same[0] == same[1]


def test_a_job_runs_in_the_worker_and_cancel_replaces_the_worker(worker, tmp_path):
    assert worker.submit(phantom_args(tmp_path / "cohort")).wait(timeout=TIMEOUT).ok
    case = next(r for r in (tmp_path / "cohort" / "manifest.csv").read_text().splitlines()[1:])
    image, mask = (tmp_path / "cohort" / c for c in case.split(",")[1:3])
    predict = ["predict", "--bundle", str(DEMO_BUNDLE), "--image", str(image), "--mask", str(mask), "--out", str(tmp_path / "out")]
    job = Job("predict", predict, "cpu", load=lambda folder: json.loads((tmp_path / "out" / "result.json").read_text()),
              workdir=tmp_path / "w1", worker=worker).start()
    result = job.wait()
    assert 0.0 <= result["probability"] <= 1.0 and "(in the warm worker, pid" in job.log_text()
    pid = worker.pid
    slow = Job("demo", ["demo", "--quick", "--out", str(tmp_path / "demo")], "cpu", load=lambda folder: pytest.fail("loaded"),
               workdir=tmp_path / "w2", worker=worker).start()
    deadline = time.monotonic() + TIMEOUT
    while not any(e.get("event") == "progress" for e in slow.poll()) and time.monotonic() < deadline:
        time.sleep(0.05)
    slow.cancel()
    assert slow.done and slow.error == "cancelled" and not worker.alive
    with pytest.raises(JobError, match="no such bundle"):  # the next job starts a new worker
        Job("predict", ["predict", "--bundle", str(tmp_path / "none"), "--image", str(image), "--out", str(tmp_path / "o")], "cpu",
            load=lambda folder: None, workdir=tmp_path / "w3", worker=worker).start().wait()
    assert worker.alive and worker.pid != pid


def test_a_busy_worker_hands_the_next_command_to_a_cold_process(worker, tmp_path):
    running = worker.submit(phantom_args(tmp_path / "a", cases=6))
    second = worker.submit(phantom_args(tmp_path / "b"))
    assert isinstance(second, CLIRunner) and second.pid != worker.pid
    assert second.wait(timeout=TIMEOUT).ok and running.wait(timeout=TIMEOUT).ok
