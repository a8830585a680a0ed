"""Hot reload of the folders given with `--watch` (docs/local-stack.md, "Code reload and synthesis").

The workers run a numbered snapshot of the folder under the stack's state folder, taken at start
and after each change, never the live folder, where a half-saved file could be imported. Polling,
not a watcher library: a few dozen files.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from local.console import Console
from local.runtime.pool import FunctionPool

POLL_SECONDS = 0.25
_BYTECODE = (".pyc", ".pyo")


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (mtime_ns, size) of every file under `folder` except bytecode."""
    found = {}
    for path in folder.rglob("*"):
        relative = path.relative_to(folder).as_posix()
        if "__pycache__" in path.parts or relative.endswith(_BYTECODE):
            continue
        if path.is_file():
            stat = path.stat()
            found[relative] = (stat.st_mtime_ns, stat.st_size)
    return found


def syntax_errors(folder: Path, relative_paths: Iterable[str]) -> list[str]:
    """A readable report of each Python file among `relative_paths` that does not compile."""
    errors = []
    for relative in sorted(relative_paths):
        path = folder / relative
        if path.suffix != ".py" or not path.is_file():
            continue
        try:
            compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
        except SyntaxError as error:
            line = (error.text or "").rstrip("\n")
            caret = " " * max(0, (error.offset or 1) - 1 - (len(line) - len(line.lstrip()))) + "^"
            errors.append(f"{path}:{error.lineno}: {error.msg}\n      {line.strip()}\n      {caret}")
        except (OSError, ValueError) as error:
            errors.append(f"{path}: {error}")
    return errors


@dataclass
class WatchedSource:
    folder: Path
    pools: list[FunctionPool] = field(default_factory=list)
    files: dict[str, tuple[int, int]] = field(default_factory=dict)
    snapshot: Path | None = None
    generation: int = 0
    rejected: dict[str, tuple[int, int]] | None = None  # files whose reload failed: wait for a change


class CodeWatcher:
    def __init__(self, sources: list[Path], snapshots: Path, console: Console) -> None:
        self._sources = [WatchedSource(folder.resolve()) for folder in sources]
        self._snapshots = snapshots
        self._console = console
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0

    def code_dir(self, asset_dir: Path) -> Path | None:
        """Where a function with this asset folder runs: a snapshot of its watched source (taken
        now if this is the first function of that source), or None when no watched folder is its
        source."""
        asset_files = set(_files(asset_dir))  # its source holds every file the asset holds
        sources = (w for w in self._sources if asset_files and asset_files <= set(_files(w.folder)))
        watched = next(sources, None)
        if watched is None:
            return None
        if watched.snapshot is None:
            watched.files = _files(watched.folder)
            watched.snapshot = self._take_snapshot(watched)
            self._forget_snapshots(watched, {watched.snapshot})  # an earlier run's
        return watched.snapshot

    def bind(self, pool: FunctionPool) -> None:
        """`pool` runs a snapshot of a watched folder: move it with each change."""
        for watched in self._sources:
            if watched.snapshot is not None and pool.function.code_dir == watched.snapshot:
                watched.pools.append(pool)

    def summary(self) -> list[str]:
        return [
            f"{watched.folder} ({len(watched.pools)} functions)" for watched in self._sources if watched.pools
        ]

    def start(self) -> None:
        if any(watched.pools for watched in self._sources):
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _take_snapshot(self, watched: WatchedSource) -> Path:
        watched.generation += 1
        target = self._snapshots / f"{watched.folder.name}.{watched.generation}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(
            watched.folder, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
        )
        return target

    def _forget_snapshots(self, watched: WatchedSource, keep: set[Path]) -> None:
        """Remove this source's snapshots but `keep` (a worker may still finish an invocation on
        the one before the current)."""
        for old in self._snapshots.glob(f"{watched.folder.name}.*"):
            if old not in keep:
                shutil.rmtree(old, ignore_errors=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            for watched in self._sources:
                if watched.pools:
                    try:
                        await self._check(watched)
                    except OSError as error:  # a file vanished mid-copy (an editor's rename): next round
                        self._console.warn(f"reload {watched.folder}: {error}")

    async def _check(self, watched: WatchedSource) -> None:
        files = _files(watched.folder)
        if files in (watched.files, watched.rejected):
            return
        changed = {
            path for path in files.keys() | watched.files.keys() if files.get(path) != watched.files.get(path)
        }
        errors = syntax_errors(watched.folder, changed & files.keys())
        if errors:
            watched.rejected = files
            details = "\n    ".join(errors)
            self._console.event(
                f"!!! reload of {watched.folder} held back: the previous code keeps serving until this is "
                f"fixed\n    {details}"
            )
            return
        snapshot = self._take_snapshot(watched)
        keep = {snapshot}
        for pool in watched.pools:
            pool.switch_code(snapshot)
            keep |= pool.code_dirs()  # the code it may go back to (an invocation may still run it)
        self._forget_snapshots(watched, keep)
        watched.files, watched.snapshot, watched.rejected = files, snapshot, None
        self.reloads += 1
        shown = ", ".join(sorted(changed)[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        self._console.event(
            f"reloaded {watched.folder.name}/ ({shown}): {len(watched.pools)} functions on the new code"
        )
