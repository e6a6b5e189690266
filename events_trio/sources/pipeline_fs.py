"""Looking at a pipeline directory on disk: create it, scan it, observe a batch.

Synchronous filesystem helpers between the sans-IO rules (``pipeline.py``)
and the Trio watcher (``watcher.py``): they read the disk *now* and hand the
rules plain values (``(stage, item_id)`` pairs and observations). Symlinks
count only when they resolve to a file inside the pipeline directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

from watchfiles import Change
from watchfiles.main import FileChange

from ..core.errors import StartupError
from .pipeline import (
    DEFAULT_STAGES,
    ItemPath,
    ItemSeen,
    Observation,
    StagePath,
    StageSeen,
    is_stage_name,
    parse_path,
)

# The watcher's logger (see pipeline.py): one name for all of the watcher's lines.
log = logging.getLogger("events_trio.watcher")

#: Paths remembered by :class:`OnceLog` before it starts over (bounds memory).
ONCE_LOG_MAX_PATHS: Final = 10_000


class OnceLog:
    """Logs a message about a path the first time only, not once per change.

    An editor that rewrites an ignored file every second must not write a
    log line every second. Paths are logged with ``repr`` so a name holding
    a newline cannot forge a log line. At most :data:`ONCE_LOG_MAX_PATHS`
    are remembered; then the set starts over.
    """

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def log(self, level: int, message: str, path: object, *args: object) -> None:
        """Log ``message % (path!r, *args)`` unless it was logged for ``path`` before."""
        key = (message, str(path))
        if key in self._seen:
            return
        if len(self._seen) >= ONCE_LOG_MAX_PATHS:
            self._seen.clear()
        self._seen.add(key)
        log.log(level, message, str(path), *args)


#: Shared by every watcher of the process (one per process in practice).
once = OnceLog()


def ensure_pipeline(root: Path, stages: Sequence[str] = DEFAULT_STAGES) -> bool:
    """Create ``root`` with ``stages`` unless it already holds a stage folder.

    Returns:
        Whether the stage folders were created.

    Raises:
        StartupError: ``root`` exists but is not a directory, or cannot be created.
    """
    if root.is_dir() and any(is_stage_name(c.name) and c.is_dir() for c in root.iterdir()):
        return False
    if root.exists() and not root.is_dir():
        raise StartupError(f"pipeline path {root} is not a directory")
    try:
        for stage in stages:
            (root / stage).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StartupError(f"cannot create pipeline directory {root}: {error.strerror}") from None
    return True


def is_item_file(path: Path, root_real: Path) -> bool:
    """Whether ``path`` is a regular file (or a symlink to one) inside ``root_real``.

    Symlinks pointing outside the pipeline directory, dangling or looping
    links and anything that vanished meanwhile count as absent.
    """
    try:
        return path.resolve(strict=True).is_relative_to(root_real) and path.is_file()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python 3.11)
        return False


def list_stage(stage_dir: Path, root_real: Path) -> list[ItemSeen]:
    """The work items present in one stage folder (empty if it cannot be read)."""
    try:
        names = sorted(os.listdir(stage_dir))
    except OSError as error:
        if stage_dir.exists():
            once.log(logging.WARNING, "cannot read stage folder %r: %s", stage_dir, error.strerror)
        return []
    found = []
    for name in names:
        parsed = parse_path((stage_dir.name, name))
        if isinstance(parsed, ItemPath) and is_item_file(stage_dir / name, root_real):
            found.append(ItemSeen(parsed.stage, parsed.item_id, True))
    return found


def scan_pipeline(root: Path) -> list[tuple[str, str]]:
    """Every work item under ``root`` as ``(stage, item_id)`` (empty if unreadable)."""
    try:
        root_real = root.resolve(strict=True)
        stage_dirs = [c for c in root.iterdir() if is_stage_name(c.name) and c.is_dir()]
    except (OSError, RuntimeError):
        return []
    return [(seen.stage, seen.item_id) for d in stage_dirs for seen in list_stage(d, root_real)]


def observe(root: Path, root_real: Path, changes: Iterable[FileChange]) -> list[Observation]:
    """Turn one awatch batch into observations by looking at each path now.

    Args:
        root: The pipeline directory as watched (absolute).
        root_real: ``root`` with symlinks resolved.
        changes: ``(Change, absolute path)`` pairs.
    """
    found: list[Observation] = []
    for change, raw in changes:
        path = Path(raw)
        try:
            parsed = parse_path(path.relative_to(root).parts)
        except ValueError:
            parsed = None
        match parsed:
            case ItemPath(stage=stage, item_id=item_id):
                found.append(ItemSeen(stage, item_id, is_item_file(path, root_real)))
            case StagePath(stage=stage):
                present = path.is_dir()
                found.append(StageSeen(stage, present))
                if present and change == Change.added:
                    # Items already inside (a folder moved in, or written before
                    # the watch on the new folder was in place) produce no change.
                    found.extend(list_stage(path, root_real))
            case _:
                once.log(logging.DEBUG, "ignoring %r (%s)", raw, change.name)
    return found


def rescan_observations(
    items: Mapping[str, str], entries: Iterable[tuple[str, str]]
) -> list[Observation]:
    """Observations that turn known ``items`` (id -> stage) into a fresh scan's ``entries``.

    For the polling fallback: every scanned item is present where it was
    found; every known item not found where it was is absent there.
    """
    present = set(entries)
    found: list[Observation] = [ItemSeen(stage, item_id, True) for stage, item_id in present]
    found.extend(
        ItemSeen(stage, item_id, False)
        for item_id, stage in items.items()
        if (stage, item_id) not in present
    )
    return found


__all__ = [
    "OnceLog",
    "ensure_pipeline",
    "is_item_file",
    "list_stage",
    "observe",
    "rescan_observations",
    "scan_pipeline",
]
