"""The Qt-free background runner and jobs on real subprocesses: JSON progress lines, Cancel kills the
whole process group (also a worker that ignores SIGTERM), the chosen device reaches the CLI as given,
GPU out-of-memory -> CPU fallback, UTF-8 output whatever the locale, the whole log kept and the work
folder kept after a failure."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "NeoNetSlicer")) if p not in sys.path]

from NeoNetSlicerLib.jobs import Job  # noqa: E402
from NeoNetSlicerLib.runner import (  # noqa: E402
    CLIRunner,
    cli_command,
    is_out_of_memory,
    library_env,
    set_device_argument,
)

# A worker that reports through neonet_core.progress exactly as the neonet CLI does with --progress json.
WORKER = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from neonet_core.progress import Progress, emit, set_default_mode
    set_default_mode("json")
    mode = sys.argv[1]
    device = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu"
    if mode == "steps":
        print("a plain log line", flush=True)
        with Progress(4, "work") as p:
            for i in range(4):
                p.update(1, loss=1.0 / (i + 1))
        emit("result", device=device, gpus=os.environ.get("CUDA_VISIBLE_DEVICES"))
    elif mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        emit("child", pid=child.pid)
        time.sleep(600)
    elif mode == "oom":
        if device != "cpu":
            print("neonet predict: error: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr)
            sys.exit(1)
        emit("result", device=device)
    elif mode == "fail":
        print("a line before the error", flush=True)
        print("Traceback (most recent call last): ...", file=sys.stderr)
        print("neonet predict: error: scan.nrrd: file not found", file=sys.stderr)
        sys.exit(1)
    elif mode == "unicode":
        emit("result", text="Größe 5 µm")
        print("Tumor ß", flush=True)
        print("Fehler: µ", file=sys.stderr)
    elif mode == "stubborn":
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        emit("ready")
        time.sleep(600)
    """
)


@pytest.fixture
def worker(tmp_path):
    path = tmp_path / "worker.py"
    path.write_text(WORKER)
    return lambda *args: [sys.executable, str(path), *map(str, args)]


def test_progress_lines_become_events(worker):
    runner = CLIRunner().start(worker("steps"), env=library_env())
    seen = []
    result = runner.wait(seen.append, timeout=60)
    assert result.ok and result.returncode == 0
    progress = [e for e in seen if e["event"] == "progress"]
    assert [e["step"] for e in progress] == [1, 2, 3, 4]
    assert [e["fraction"] for e in progress] == [0.25, 0.5, 0.75, 1.0]
    assert progress[1]["loss"] == pytest.approx(0.5) and progress[0]["stage"] == "work"
    assert seen[0] == {"event": "log", "line": "a plain log line"}
    assert [e["event"] for e in seen[-2:]] == ["done", "result"]
    assert result.events == seen


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"  # a zombie waiting to be reaped is dead
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_cancel_kills_the_whole_process_group(worker):
    runner = CLIRunner().start(worker("hang"), env=library_env())
    child = None
    deadline = time.monotonic() + 60
    while child is None and time.monotonic() < deadline:
        child = next((e["pid"] for e in runner.poll() if e["event"] == "child"), None)
        time.sleep(0.05)
    assert child is not None and not _gone(child)
    runner.cancel(grace=2.0)
    assert runner.finished and runner.result.cancelled and not runner.result.ok
    assert runner.result.returncode != 0
    for _ in range(100):
        if _gone(child):
            break
        time.sleep(0.05)
    assert _gone(runner.pid) and _gone(child)


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_cancel_stops_a_worker_that_ignores_sigterm(worker):
    runner = CLIRunner().start(worker("stubborn"), env=library_env())
    runner.wait(timeout=60, on_event=lambda e: e["event"] == "ready" and runner.cancel())
    assert runner.result.cancelled and _gone(runner.pid)


def test_failure_keeps_the_whole_log_and_the_work_folder(worker, tmp_path):
    from NeoNetSlicerLib.jobs import JobError

    events = []
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "image.nrrd").write_text("input")
    job = Job("predict", ["fail"], "cuda:0", load=lambda folder: "loaded", workdir=workdir, command=lambda args: worker(*args)).start()
    with pytest.raises(JobError, match="^neonet predict: error: scan.nrrd: file not found$"):
        job.wait(events.append)
    assert job.result is None and job.current_device == "cuda:0" and job.warnings == []  # not an OOM: no rerun
    assert not job.runner.result.out_of_memory and job.runner.result.returncode == 1
    assert not any(e["event"] == "warning" for e in events)
    log = job.log_text().splitlines()
    assert log[0].startswith("$ ") and log[0].endswith("fail --device cuda:0")
    assert sorted(log[1:4]) == ["a line before the error", "stderr: Traceback (most recent call last): ...",
                                "stderr: neonet predict: error: scan.nrrd: file not found"]  # two pipes: order within each
    assert log[-2:] == ["Job predict: neonet predict: error: scan.nrrd: file not found", f"Work folder kept for inspection: {workdir}"]
    assert (workdir / "image.nrrd").read_text() == "input"


def test_output_is_read_as_utf8_whatever_the_locale(worker, tmp_path):
    """In an ASCII locale (as a Windows code page would be), non-ASCII output still arrives intact."""
    import json
    import subprocess

    code = ("import json, sys; from NeoNetSlicerLib.runner import CLIRunner, library_env; "
            "r = CLIRunner().start(json.loads(sys.argv[1]), env=library_env()).wait(timeout=60); "
            "print(ascii([r.events, r.log]))")
    env = {**library_env([ROOT / "NeoNetSlicer"]), "LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    env.pop("PYTHONIOENCODING")
    run = subprocess.run([sys.executable, "-c", code, json.dumps(worker("unicode"))], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    events, log = eval(run.stdout)  # noqa: S307  (our own ascii() output)
    assert {"event": "result", "text": "Größe 5 µm"} in events and {"event": "log", "line": "Tumor ß"} in events
    assert "stderr: Fehler: µ" in log


def test_command_and_device_helpers():
    assert set_device_argument(["predict", "--device", "cuda:1", "x.nrrd"], "cpu") == ["predict", "x.nrrd", "--device", "cpu"]
    assert set_device_argument(["predict", "--device=mps"], "cpu") == ["predict", "--device", "cpu"]
    command = cli_command(["predict", "a.nrrd"], python="/usr/bin/python3")
    assert command == ["/usr/bin/python3", "-m", "neonet_core.cli.main", "--progress", "json", "predict", "a.nrrd"]
    assert is_out_of_memory("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate")
    assert is_out_of_memory("RuntimeError: MPS backend out of memory")
    assert not is_out_of_memory("neonet predict: error: x.nrrd: file not found")
    env = library_env()
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)


def test_job_passes_the_chosen_device_to_the_cli_as_given(worker, tmp_path):
    """cuda:N goes to the CLI's --device unchanged; the environment's GPU list is left alone."""
    for device in ("cuda:1", "mps", "auto"):
        events = []
        job = Job("predict", ["steps", "--device", "cpu"], device, load=lambda folder: "loaded", workdir=tmp_path / device,
                  command=lambda args: worker(*args), env={**library_env(), "CUDA_VISIBLE_DEVICES": "4,6"})
        assert job.start().wait(events.append) == "loaded"
        argv = job.runner.process.args
        assert argv[-2:] == ["--device", device] and argv.count("--device") == 1
        assert {"event": "result", "device": device, "gpus": "4,6"} in events and job.current_device == device


def test_job_reruns_on_cpu_after_gpu_oom_then_loads(worker, tmp_path):
    from NeoNetSlicerLib.jobs import describe

    workdir = tmp_path / "work"
    workdir.mkdir()
    job = Job("predict", ["oom"], "cuda:0", load=lambda folder: f"loaded from {folder.name}", workdir=workdir,
              command=lambda args: worker(*args)).start()
    events = []
    assert job.wait(events.append) == "loaded from work"
    assert job.current_device == "cpu" and len(job.warnings) == 1 and "out of memory" in job.warnings[0]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "warning" and kinds[-2:] == ["result", "finished"]
    assert describe(events[0]).startswith("Warning: GPU out of memory on device 'cuda:0'")
    assert not workdir.exists()  # removed after a success
    assert [line for line in job.log_text().splitlines() if line.startswith("$ ")][1].endswith("oom --device cpu")


def test_cancelled_job_loads_nothing(worker, tmp_path):
    from NeoNetSlicerLib.jobs import JobError

    loaded = []
    job = Job("predict", ["hang"], "cpu", load=loaded.append, workdir=tmp_path / "w", command=lambda args: worker(*args)).start()
    job.cancel()
    assert job.done and job.error == "cancelled" and loaded == []
    with pytest.raises(JobError, match="cancelled"):
        job.wait()
