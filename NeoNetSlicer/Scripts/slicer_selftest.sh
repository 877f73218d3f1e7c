#!/usr/bin/env bash
# NeoNetSlicer's self-test in real 3D Slicer applications (not run by this repository's CI: no Slicer there).
# Usage: NeoNetSlicer/Scripts/slicer_selftest.sh /path/to/Slicer [/path/to/another/Slicer ...]
# Linux without a display: xvfb-run -a NeoNetSlicer/Scripts/slicer_selftest.sh ...
# Exits non-zero at the first Slicer whose self-test fails.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
for slicer in "$@"; do
  echo "== $("$slicer" --version)"
  PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$slicer" --testing --no-splash --no-main-window \
    --additional-module-paths "$repo/NeoNetSlicer" \
    --python-code "slicer.selfTests['NeoNetSlicer']()"
done
