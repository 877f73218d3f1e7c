"""Work over the cases of a cohort: one status row per case, and a failing case never stops the others.

Used by ``neonet predict --manifest`` and ``neonet crop``; :func:`case_folder_names` names each case's
output folder or files, refusing two case ids that would share one.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Callable, Iterable, Sequence


def safe_case_name(case_id: str) -> str:
    """``case_id`` as a file or folder name: each run of characters other than ``A-Za-z0-9._-``
    becomes ``_``, outer dots go; ``"case"`` when nothing is left."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", case_id).strip(".") or "case"


def case_folder_names(case_ids, manifest) -> dict[str, str]:
    """``{case_id: safe_case_name(case_id)}``; :class:`InputError` naming ``manifest`` when two case ids
    give the same name (compared ignoring case, as macOS and Windows file systems do)."""
    from neonet_core.errors import InputError

    names, seen = {}, {}
    for case_id in case_ids:
        name = safe_case_name(case_id)
        other = seen.setdefault(name.lower(), case_id)
        if other != case_id:
            raise InputError(manifest, f"case ids {other!r} and {case_id!r} both become the output folder name {name!r} "
                                       "(characters other than A-Za-z0-9._- become '_', case is ignored); make them differ")
        names[case_id] = name
    return names


def one_line(err: BaseException) -> str:
    """``err`` as one line; errors other than NeoNetError, ValueError and OSError are prefixed with their type."""
    from neonet_core.errors import NeoNetError

    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, (NeoNetError, ValueError, OSError)) else f"{type(err).__name__}: {text}"


def report_case(stage: str, case_id: str, problem: str, event: str = "case_failed") -> None:
    """Say that case ``case_id`` failed (or, with ``event="warning"``, warn): a JSON event in
    ``--progress json`` mode, and ``neonet <stage>: case <id>: <problem>`` on stderr."""
    from neonet_core.progress import emit

    emit(event, stage=stage, case_id=case_id, error=problem)
    prefix = "" if f"case {case_id}:" in problem else f"case {case_id}: "  # library errors often name the case already
    print(f"neonet {stage}: {prefix}{problem}", file=sys.stderr)


def run_cases(cases: Sequence, work: Callable[[Any], dict], stage: str,
              failures: Iterable[tuple[str, str]] = ()) -> dict[str, dict]:
    """``work(case)`` for every case (objects with a ``case_id``), under a progress bar.

    Returns ``{case_id: row}``: ``{"status": "ok", **work(case)}``, or ``{"status": "failed",
    "error": one line}`` when ``work`` raised (reported with :func:`report_case`; the batch goes on).
    ``failures``: ``(case_id, problem)`` found before any work (e.g. a manifest's bad rows); they
    come first.
    """
    from neonet_core.progress import Progress

    rows = {}
    for case_id, problem in failures:
        report_case(stage, case_id, problem)
        rows[case_id] = {"status": "failed", "error": problem}
    with Progress(len(cases), stage) as progress:
        for case in cases:
            try:
                rows[case.case_id] = {"status": "ok", **work(case)}
            except Exception as err:  # a bad case never stops the batch
                rows[case.case_id] = {"status": "failed", "error": one_line(err)}
                report_case(stage, case.case_id, rows[case.case_id]["error"])
            progress.update(1, case=case.case_id)
    return rows
