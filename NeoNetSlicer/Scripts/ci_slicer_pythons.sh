#!/usr/bin/env bash
# CI stage: the Slicer module under the Pythons that Slicer releases embed (README, "Supported Slicer").
#   Python 3.9  (Slicer 5.6 / 5.8, not supported): the Lib package imports without torch, the panel's
#               presenter says which Slicer NeoNet needs, installs are refused, the runner works.
#   Python 3.12 (Slicer 5.10+): the real Widget (offscreen shim), presenter, runner and batch script
#               before NeoNet's packages are installed (no torch: first use, self-test skipped cleanly).
# Each Python comes from pyenv; a missing one is reported and its part skipped. A few minutes at most
# (the virtual environments are kept in $NEONET_CI_CACHE between runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${NEONET_CI_CACHE:-${TMPDIR:-/tmp}/neonet-ci-pythons}

run_under() {  # run_under VERSION "PACKAGES" TEST_FILE...
  local version=$1 packages=$2 python venv
  shift 2
  python=$(ls -d "$HOME"/.pyenv/versions/"$version".*/bin/python 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$python" ]; then
    echo "Python $version is not installed (pyenv): this part of the stage is skipped"
    return 0
  fi
  venv="$cache/py$version"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  # shellcheck disable=SC2086  # the package list is split on purpose
  "$venv/bin/python" -m pip install -q $packages
  echo "== $("$venv/bin/python" --version): $*"
  OMP_NUM_THREADS=1 QT_QPA_PLATFORM=offscreen PYTHONDONTWRITEBYTECODE=1 \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
}

run_under 3.9 "numpy packaging pytest" Testing/test_slicer_panel.py Testing/test_slicer_runner.py
run_under 3.12 "numpy scipy SimpleITK slicer-core PySide6-Essentials packaging pytest" \
  Testing/test_slicer_panel.py Testing/test_slicer_runner.py Testing/test_slicer_widget.py Testing/test_slicer_batch.py
