"""The inversion's state file: written atomically after every iteration, read to resume."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .atomic import replacing

FORMAT = "sweep-fwi-state"
VERSION = 1


def save_state(path: str | os.PathLike, problem: dict, progress: dict) -> None:
    """Write ``{problem, progress}`` to ``path`` atomically: a temporary file in the same directory,
    flushed to disk, then renamed over ``path``, so an interruption at any moment leaves either the
    previous state or the new one, never a partial file."""
    with replacing(path) as f:
        torch.save({"format": FORMAT, "version": VERSION, "problem": problem, "progress": progress}, f)


def load_state(path: str | os.PathLike, problem: dict) -> dict | None:
    """The saved progress of ``problem`` in ``path``; None when there is no such file.

    Raises ValueError (leaving the file untouched) when the file is not a sweep-fwi state or belongs to
    another problem, naming what differs.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, truncated, or not a torch file: say which file and why
        raise ValueError(f"state file {str(path)!r} is not a readable sweep-fwi state ({exc})") from exc
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"state file {str(path)!r} is not a sweep-fwi state")
    if saved.get("version") != VERSION:
        raise ValueError(f"state file {str(path)!r} has version {saved.get('version')}, this sweep reads {VERSION}")
    differs = sorted(k for k in set(problem) | set(saved["problem"]) if saved["problem"].get(k) != problem.get(k))
    if differs:
        raise ValueError(f"state file {str(path)!r} belongs to another problem (it differs in: {', '.join(differs)}); "
                         "give another state file, or delete this one to start afresh")
    return saved["progress"]


def saved_iterations(path: str | os.PathLike) -> int:
    """How many iterations the state in ``path`` holds; 0 when there is none (no file, or not a state).

    Cheap enough for an interrupt handler: the file is memory-mapped, so its tensors are not read.
    """
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return len(saved["progress"]["losses"]) if saved.get("format") == FORMAT else 0
    except Exception:  # missing, unreadable or foreign: nothing to resume from, which is what 0 says
        return 0
