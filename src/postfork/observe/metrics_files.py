"""The multiprocess metrics directory under recycling: dead workers' files merged, not piled up.

prometheus_client keeps one set of files per process that ever lived (``counter_<pid>.db``...)
and every scrape reads them all: with ``max-requests`` recycling the directory and the scrape
time grow without bound (client_python #367; its compaction, #443 / PR #518, is unmerged
because of pid reuse). Here:

- each worker writes under a **life id**, ``<pid>-<start time>`` (the start time from
  ``/proc/<pid>/stat``), so a reused pid is a different life and never adopts or hides a dead
  worker's files;
- :func:`compact` (each worker's periodic sweep, and every scrape) merges the counters,
  histograms and summaries of lives that ended into one archive file per type and removes
  their files; live gauges of ended lives are removed (a worker killed without its exit hook
  leaves them);
- compaction holds an exclusive ``flock`` on the directory's lock file and a scrape holds it
  shared, so a scrape sees either the dead files or the archive that absorbed them, never
  both and never neither: no count is lost or doubled.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

LOCK_NAME = ".postfork-metrics.lock"
ARCHIVE = "archive"
_MERGED_TYPES = ("counter", "histogram", "summary")

_life: dict[str, Any] = {"pid": -1, "id": ""}


def life_id() -> str:
    """This process's life: its pid and start time (cached per pid: called on every write)."""
    pid = os.getpid()
    if _life["pid"] != pid:
        _life["pid"], _life["id"] = pid, f"{pid}-{_start_time(pid) or 0}"
    return str(_life["id"])


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode(errors="replace")
    except OSError:
        return None
    return text.rpartition(")")[2].split()[19]  # field 22; the name may hold spaces or ')'


def life_ended(life: str) -> bool:
    """Whether the life that wrote a file is over (its pid gone, or reused by another)."""
    pid_text, _, started = life.partition("-")
    if not pid_text.isdigit() or not started:
        return False  # not ours (the archive, another writer's naming): never touched
    if not os.path.exists("/proc/self/stat"):  # no /proc: the pid alone
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return _start_time(int(pid_text)) != started


def use_life_ids() -> None:
    """Make prometheus_client name this process's files by life id (before metrics exist)."""
    from prometheus_client import values

    if getattr(values.ValueClass, "_postfork_life_ids", False):
        return
    make: Any = values.MultiProcessValue  # untyped upstream
    value_class = make(process_identifier=life_id)
    value_class._postfork_life_ids = True
    values.ValueClass = value_class


@contextlib.contextmanager
def scrape_lock(directory: str) -> Iterator[None]:
    """Held shared while a scrape reads the files: compaction waits for it."""
    with _locked(directory, fcntl.LOCK_SH):
        yield


@contextlib.contextmanager
def _locked(directory: str, mode: int) -> Iterator[bool]:
    fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# prometheus_client's live gauge modes (its Gauge multiprocess_mode values starting "live")
LIVE_GAUGE_MODES = ("liveall", "livesum", "livemax", "livemin", "livemostrecent")


def remove_live_gauges(directory: str, life: str) -> None:
    """What prometheus_client's ``mark_process_dead`` does, by name: five unlinks instead of
    five scans of a directory that holds every worker's files (in a dying worker's exit)."""
    for mode in LIVE_GAUGE_MODES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, f"gauge_{mode}_{life}.db"))


def lives(directory: str) -> tuple[int, int]:
    """(lives with files here, lives running: those with a live gauge file), from the names
    alone: one directory listing, no /proc lookups."""
    found, running = set(), set()
    for name in os.listdir(directory):
        if not name.endswith(".db"):
            continue
        parts = name[:-3].split("_")
        found.add(parts[-1])
        if _live_gauge(parts):
            running.add(parts[-1])
    found.discard(ARCHIVE)
    return len(found), len(running)


def behind(directory: str) -> bool:
    """Whether the sweeps fell behind: files of more than twice as many lives as are running,
    plus two."""
    found, running = lives(directory)
    return found > 2 * running + 2


def _live_gauge(parts: list[str]) -> bool:
    """A file name's parts (type, mode, life) name a live gauge: it counts while its life runs."""
    return parts[0] == "gauge" and len(parts) == 3 and parts[1].startswith("live")


def compact(directory: str, *, wait: bool = False) -> int:
    """Merge the files of ended lives into the archive; returns how many files it removed.
    Without ``wait`` it gives up at once when a scrape or another compaction holds the lock."""
    mode = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
    with _locked(directory, mode) as locked:
        if not locked:
            return 0
        return _compact_locked(directory)


def _compact_locked(directory: str) -> int:
    from prometheus_client import mmap_dict

    MmapedDict: Any = mmap_dict.MmapedDict  # untyped upstream

    ended: dict[str, list[str]] = defaultdict(list)
    gone: list[str] = []
    ended_lives: dict[str, bool] = {}  # life -> ended (one /proc lookup per life, not per file)
    for path in glob.glob(os.path.join(directory, "*.db")):
        parts = os.path.basename(path)[:-3].split("_")
        life = parts[-1]
        if life == ARCHIVE:
            continue
        if life not in ended_lives:
            ended_lives[life] = life_ended(life)
        if not ended_lives[life]:
            continue
        if parts[0] in _MERGED_TYPES:
            ended[parts[0]].append(path)
        elif _live_gauge(parts):
            gone.append(path)  # a live gauge of a life that ended: it counts no more
    for typ, paths in ended.items():
        archive = os.path.join(directory, f"{typ}_{ARCHIVE}.db")
        totals: dict[str, float] = defaultdict(float)
        for path in [archive, *paths] if os.path.exists(archive) else paths:
            for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(path):
                totals[key] += value
        temporary = archive + ".tmp"  # not *.db: a scrape never globs it
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        merged = MmapedDict(temporary)
        try:
            for key in sorted(totals):
                merged.write_value(key, totals[key], 0.0)
        finally:
            merged.close()
        os.replace(temporary, archive)
        gone.extend(paths)
    for path in gone:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return len(gone)
