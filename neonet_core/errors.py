"""Exception types. Every user-facing error names the file (or case) and the problem in one line."""

from __future__ import annotations

from pathlib import Path


class NeoNetError(Exception):
    """Base class: the CLI prints ``str(err)`` as one line and exits non-zero."""


class InputError(NeoNetError):
    """A file the user gave cannot be used: ``InputError(path, problem)`` -> "path: problem"."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class DiskFullError(InputError):
    """No space left where an output was being written; nothing of it was kept."""


class ManifestError(NeoNetError):
    """A cohort manifest problem; ``problems`` lists every (case_id, file, problem) found."""

    def __init__(self, manifest: str | Path, problems: list[tuple[str, str, str]]):
        self.manifest = str(manifest)
        self.problems = problems
        first = problems[0] if problems else ("", "", "unknown problem")
        more = f" (and {len(problems) - 1} more problem(s); run `neonet cohort check`)" if len(problems) > 1 else ""
        case_id, file = first[0], first[1]
        where = "".join(f"{part}: " for part in (f"case {case_id}" if case_id else "", file if file != str(manifest) else "") if part)
        super().__init__(f"{manifest}: {where}{first[2]}{more}")


class BundleError(NeoNetError):
    """A model bundle that is incomplete, tampered with or of an unknown format."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class NoTumourFoundError(NeoNetError):
    """A tumour mask is empty (user's) or NeoSeg found no tumour: never a silent centre crop."""


class ImplausibleTumourError(NeoNetError):
    """NeoSeg's tumour is too large to be a tumour (volume, extent or share of the body)."""
