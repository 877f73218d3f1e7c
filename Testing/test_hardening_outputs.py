"""Outputs are all-or-nothing and nothing of the user's is overwritten (issue 12 items 1, 2, 3 and 10).

Real file systems: a real size-limited tmpfs for the full disk and a read-only tmpfs (both need root to
mount; skipped, with the reason, where that is refused), a real RLIMIT_FSIZE limit in a subprocess for
the short write ITK does not report (no root needed), real concurrent ``neonet predict`` processes.
Every refusal must be one line naming the path and the problem, and leave nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from neonet_core.cli import main as cli_main
from neonet_core.errors import InputError
from neonet_core.fileio import publish_folder
from neonet_core.io import write_volume
from neonet_core.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "Resources" / "Models" / "neonet-demo"
IMAGE = ROOT / "NeoNetSlicer" / "Resources" / "SampleData" / "NeoNetPhantom.nrrd"
MASK = ROOT / "NeoNetSlicer" / "Resources" / "SampleData" / "NeoNetPhantom_tumour.seg.nrrd"
PREDICT = ("predict", "--bundle", BUNDLE, "--image", IMAGE, "--mask", MASK, "--device", "cpu", "--no-tta")


def neonet(capsys, *argv) -> tuple[int, str, str]:
    """``neonet --progress none <argv>`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli_main.main(["--progress", "none", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The one ``neonet ...: error: ...`` line of ``err`` (never an internal error or a traceback)."""
    lines = [ln for ln in err.splitlines() if ln.startswith("neonet ")]
    assert len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err, err
    return lines[0]


def left_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(options)``: a real tmpfs mounted under tmp_path (root only; skipped where mounting is refused)."""
    mounted = []

    def mount(options: str) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'}); this check needs root")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` with one file until about ``leave`` bytes are free."""
    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


# --- item 1: a full disk ---------------------------------------------------------------------------------
def test_predict_onto_a_full_disk_writes_nothing_and_says_disk_full(tmpfs, capsys):
    """Room for the JSON files but not the attention map: ITK truncates it without a word; the re-read catches it.
    (With the demo bundle the JSON files take ~2 kB, the compressed attention map ~10 kB.)"""
    disk = tmpfs("size=1m")
    fill(disk, leave=8 << 10)
    code, out, err = neonet(capsys, *PREDICT, "--out", disk / "res")
    line = error_line(err)
    assert code == 1 and "disk full" in line and str(disk / "res") in line, err
    assert left_in(disk) == ["filler"]  # no result.json, no roi.mrk.json, no temporary folder
    (disk / "filler").unlink()
    code, out, err = neonet(capsys, *PREDICT, "--out", disk / "res")  # the same --out works once there is room
    assert code == 0, err
    assert left_in(disk) == ["res", "res/attention.nii.gz", "res/result.json", "res/roi.mrk.json"]
    assert json.loads((disk / "res" / "result.json").read_text())["tumour_source"] == "user"


def test_write_volume_onto_a_full_disk_raises_disk_full_and_leaves_no_file(tmpfs):
    disk = tmpfs("size=1m")
    fill(disk, leave=32 << 10)
    noise = np.random.default_rng(0).normal(size=(40, 64, 64)).astype(np.float32)  # ~650 kB, incompressible
    for name in ("v.nii.gz", "v.nii", "v.nrrd"):
        with pytest.raises(InputError, match="disk full") as err:
            write_volume(Volume(noise), disk / name)
        assert str(disk / name) in str(err.value) and "\n" not in str(err.value)
        assert left_in(disk) == ["filler"]


SHORT_WRITE = """
import resource, signal, sys
import numpy as np
from neonet_core.errors import InputError
from neonet_core.io import write_volume
from neonet_core.volume import Volume
noise = Volume(np.random.default_rng(0).normal(size=(40, 64, 64)).astype(np.float32))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, which ITK ignores
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    write_volume(noise, sys.argv[1])
except InputError as err:
    print(err)
"""


@pytest.mark.parametrize("name", ["v.nii.gz", "v.nrrd"])
def test_a_short_write_itk_does_not_report_is_caught_by_the_re_read(tmp_path, name):
    """No root needed: a real file-size limit (RLIMIT_FSIZE) in a subprocess cuts ITK's write short."""
    done = subprocess.run([sys.executable, "-B", "-c", SHORT_WRITE, str(tmp_path / name)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "was not written completely" in done.stdout and str(tmp_path / name) in done.stdout, done.stdout
    assert left_in(tmp_path) == []


# --- item 2: two runs into one folder --------------------------------------------------------------------
def test_of_two_publishers_into_one_folder_only_the_first_succeeds(tmp_path):
    out = tmp_path / "out"
    with ExitStack() as first:
        a = first.enter_context(publish_folder(out))  # both pass the check: out does not exist yet
        (a / "who").write_text("a")
        with pytest.raises(InputError, match="another run published into this folder meanwhile"):
            with publish_folder(out) as b:
                (b / "who").write_text("b")
                first.close()  # the first run publishes while the second still works
    assert (out / "who").read_text() == "a"
    assert left_in(tmp_path) == ["out", "out/who"]  # the loser's temporary folder is gone


def test_two_predict_processes_into_one_out_exactly_one_succeeds(tmp_path):
    """Real processes started together: one with the user's mask, one with NeoSeg; the folder is the winner's, whole."""
    out = tmp_path / "res"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    common = ["--bundle", BUNDLE, "--image", IMAGE, "--out", out, "--device", "cpu", "--no-tta"]
    argvs = {"user": [*common, "--mask", MASK], "neoseg": common}
    procs = {source: subprocess.Popen([sys.executable, "-m", "neonet_core.cli.main", "--progress", "none", "predict", *map(str, argv)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
             for source, argv in argvs.items()}
    results = {source: (p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for source, p in procs.items()}
    winners = [source for source, (code, _, _) in results.items() if code == 0]
    assert len(winners) == 1, results
    loser = next(source for source in results if source not in winners)
    code, _, err = results[loser]
    line = error_line(err)
    assert code == 1 and str(out) in line and ("another run published" in line or "already exists" in line), err
    result = json.loads((out / "result.json").read_text())
    assert result["tumour_source"] == winners[0]
    expected = {"attention.nii.gz", "result.json", "roi.mrk.json"} | ({"tumour.nii.gz"} if winners[0] == "neoseg" else set())
    assert set(os.listdir(out)) == expected
    assert os.listdir(tmp_path) == ["res"]  # no temporary folder left by the loser


# --- item 3: case ids that share an output folder name ---------------------------------------------------
@pytest.mark.parametrize("ids", [("a/b", "a_b"), ("Case1", "case1")])
def test_case_ids_that_share_a_folder_name_are_refused_before_any_output(tmp_path, capsys, ids):
    shutil.copy(IMAGE, tmp_path / "img.nrrd")
    shutil.copy(MASK, tmp_path / "mask.seg.nrrd")
    manifest = tmp_path / "m.csv"
    manifest.write_text("case_id,image,tumor_mask\n" + "".join(f"{i},img.nrrd,mask.seg.nrrd\n" for i in ids))
    for command in (["predict", "--bundle", BUNDLE, "--device", "cpu"], ["crop"]):
        code, _, err = neonet(capsys, *command, "--manifest", manifest, "--out", tmp_path / "out")
        line = error_line(err)
        assert code == 1 and str(manifest) in line and all(repr(i) in line for i in ids), err
        assert not (tmp_path / "out").exists()
    assert sorted(os.listdir(tmp_path)) == ["img.nrrd", "m.csv", "mask.seg.nrrd"]


# --- item 10: output paths that cannot be written, refused before the work -------------------------------
def test_bad_out_paths_are_refused_before_the_bundle_is_even_opened(tmp_path, capsys):
    """--bundle names nothing: a refusal that names --out proves --out was checked first."""
    afile = tmp_path / "afile"
    afile.write_text("the user's file")
    cases = {
        afile: "is a file, not a folder",
        afile / "res": "a part of the path is a file",
        tmp_path / ("x" * 300): "file name too long",
    }
    for out, words in cases.items():
        for command in (["predict", "--bundle", tmp_path / "no bundle", "--image", IMAGE], ["crop", "--image", IMAGE, "--mask", MASK]):
            code, _, err = neonet(capsys, *command, "--out", out)
            line = error_line(err)
            assert code == 1 and words in line and str(out) in line, err
    code, _, err = neonet(capsys, "segment", "--bundle", tmp_path / "no bundle", "--image", IMAGE, "--out", afile / "m.nii.gz")
    assert code == 1 and "a part of the path is a file" in error_line(err)
    code, _, err = neonet(capsys, "segment", "--bundle", tmp_path / "no bundle", "--image", IMAGE, "--out", tmp_path / "m.nii.gz",
                          "--probability", tmp_path / "m.nii.gz")
    assert code == 1 and "give the probability map its own file" in error_line(err)
    assert afile.read_text() == "the user's file" and sorted(os.listdir(tmp_path)) == ["afile"]


def test_out_on_a_read_only_file_system_is_refused_before_the_work(tmpfs, capsys):
    disk = tmpfs("size=1m,ro")
    for command, out in ((["predict", "--bundle", disk / "no bundle", "--image", IMAGE], disk / "res"),
                         (["segment", "--bundle", disk / "no bundle", "--image", IMAGE], disk / "m.nii.gz")):
        code, _, err = neonet(capsys, *command, "--out", out)
        line = error_line(err)
        assert code == 1 and "read-only file system" in line and str(out) in line, err


def test_segment_refuses_an_existing_out_and_publishes_both_files_or_neither(tmp_path, capsys):
    (tmp_path / "m.nii.gz").write_bytes(b"the user's mask")
    code, _, err = neonet(capsys, "segment", "--bundle", BUNDLE, "--image", IMAGE, "--out", tmp_path / "m.nii.gz", "--device", "cpu")
    assert code == 1 and "already exists" in error_line(err)
    assert (tmp_path / "m.nii.gz").read_bytes() == b"the user's mask"
    code, _, err = neonet(capsys, "segment", "--bundle", BUNDLE, "--image", IMAGE, "--out", tmp_path / "new.nii.gz",
                          "--probability", tmp_path / "m.nii.gz", "--device", "cpu")
    assert code == 1 and "already exists" in error_line(err)
    assert sorted(os.listdir(tmp_path)) == ["m.nii.gz"]  # neither file of the refused run
    code, _, err = neonet(capsys, "segment", "--bundle", BUNDLE, "--image", IMAGE, "--out", tmp_path / "new.nii.gz",
                          "--probability", tmp_path / "p.nrrd", "--device", "cpu")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == ["m.nii.gz", "new.nii.gz", "p.nrrd"]


def test_crop_overwrite_replaces_only_a_crop_output_folder(tmp_path, capsys):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "notes.txt").write_text("keep me")
    code, _, err = neonet(capsys, "crop", "--image", IMAGE, "--mask", MASK, "--out", own, "--overwrite")
    assert code == 1 and "not a crop output" in error_line(err) and (own / "notes.txt").read_text() == "keep me"
    out = tmp_path / "crops"
    assert neonet(capsys, "crop", "--image", IMAGE, "--mask", MASK, "--out", out)[0] == 0
    assert neonet(capsys, "crop", "--image", IMAGE, "--mask", MASK, "--out", out, "--patch-size", 8, "--overwrite")[0] == 0
    assert json.loads((out / "crop_report.json").read_text())["settings"]["patch_size"] == 8
    assert sorted(os.listdir(tmp_path)) == ["crops", "mine"]
