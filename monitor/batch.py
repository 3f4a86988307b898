"""Batch runs: many scenes x AOIs, in local processes or on a Dask cluster.

The daily job::

    summary = run_batch(["/data/new_scenes"], aois=["tumangang"], store="monitor.db")

discovers the scenes, pairs each with the AOIs its footprint covers, skips
pairs already processed by the same detector versions, reads and detects in
parallel (workers return plain data), and writes each pair's observations
and detections in one transaction from this (the coordinating) process.
A failing pair is recorded in the store with its reason and the batch goes
on. Killing the run at any moment loses at most the pairs in flight; a
re-run finishes the work with no duplicates.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from monitor.aoi import AOI, bundled_aois, load_aoi
from monitor.errors import InputError

log = logging.getLogger("monitor.batch")

#: Minimum share of an AOI's boundary a scene footprint must cover to be paired.
MIN_FOOTPRINT_COVER = 0.01


@dataclass(frozen=True)
class Task:
    """One unit of work: a scene (by path) against one AOI."""

    scene: Any  # monitor.scenes.Scene
    aoi: AOI


@dataclass
class TaskOutcome:
    """What a worker sends back: plain, picklable data.

    ``results`` holds :class:`monitor.detect.DetectionResult` objects with
    detections already in WGS84 (lon/lat) so the coordinator only writes.
    ``read_s`` and ``detect_s`` are the seconds spent reading the chip and
    detecting.
    """

    scene_id: str
    scene_path: str
    aoi_id: str
    ok: bool
    results: list = field(default_factory=list)
    coverage: float | None = None
    gsd_m: float | None = None
    error: str | None = None
    read_s: float = 0.0
    detect_s: float = 0.0


@dataclass
class BatchSummary:
    """Totals of a run (counted in scenes, and in scene x AOI pairs)."""

    scenes: int = 0
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    pairs_processed: int = 0
    pairs_skipped: int = 0
    pairs_failed: int = 0
    alerts: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    wall_s: float = 0.0
    read_s: float = 0.0
    detect_s: float = 0.0

    def to_dict(self) -> dict:
        return {
            "scenes": self.scenes,
            "processed": self.processed,
            "skipped": self.skipped,
            "failed": self.failed,
            "pairs": {"processed": self.pairs_processed, "skipped": self.pairs_skipped,
                      "failed": self.pairs_failed},
            "alerts": self.alerts,
            "failures": self.failures,
            "seconds": {"wall": round(self.wall_s, 3), "read": round(self.read_s, 3),
                        "detect": round(self.detect_s, 3)},
        }


def detector_versions(aoi: AOI) -> dict[str, str]:
    """The ``{detector name: version}`` that apply to the AOI's kind."""
    from monitor.detect import detectors_for

    return {d.name: d.version for d in detectors_for(aoi.kind)}


def pair_scenes(scenes: Sequence, aois: Sequence[AOI]) -> list[Task]:
    """Pair each scene with every AOI its footprint covers (any share > 1 %).

    A scene without a footprint is paired with every AOI (its reading then
    says whether it misses).
    """
    from shapely.geometry import shape as _shape

    tasks = []
    for s in scenes:
        fp = s.footprint
        if isinstance(fp, dict):
            fp = _shape(fp)
        for a in aois:
            if fp is None:
                tasks.append(Task(s, a))
                continue
            b = a.boundary
            if fp.intersects(b) and fp.intersection(b).area >= MIN_FOOTPRINT_COVER * b.area:
                tasks.append(Task(s, a))
    return tasks


def process_task(task: Task, options: dict | None = None) -> TaskOutcome:
    """Read one chip and run the AOI's detectors (runs inside a worker).

    Never raises for bad input: the reason is returned in ``error``.
    """
    from monitor.detect import detect
    from monitor.imagery import read_chip

    options = dict(options or {})
    s, a = task.scene, task.aoi
    out = TaskOutcome(scene_id=s.id, scene_path=str(s.path), aoi_id=a.id, ok=False)
    t0 = time.perf_counter()
    try:
        chip = read_chip(s, a, **options.get("read", {}))
        t1 = time.perf_counter()
        out.read_s = t1 - t0
        results = detect(chip, **options.get("detect", {}))
        out.detect_s = time.perf_counter() - t1
        out.results = [to_wgs84(r) for r in results]
        out.coverage = float(chip.coverage)
        out.gsd_m = float(chip.gsd_m)
        out.ok = True
    except InputError as e:
        out.error = str(e)
    except Exception as e:  # a detector bug must not stop the batch either
        out.error = f"{s.path}: {e.__class__.__name__}: {' '.join(str(e).split())}"
    return out


def to_wgs84(result):
    """A DetectionResult with its detection geometries reprojected to WGS84."""
    from dataclasses import replace

    from pyproj import CRS, Transformer

    from monitor.aoi import WGS84, _as_crs, reproject

    src = _as_crs(result.crs) if result.crs is not None else WGS84
    if src.equals(WGS84):
        return result
    tr = Transformer.from_crs(src, WGS84, always_xy=True)
    dets = [replace(d, geometry=reproject(d.geometry, tr)) for d in result.detections]
    return replace(result, detections=dets, crs=CRS.from_epsg(4326))


def _resolve_aois(aois) -> list[AOI]:
    if not aois:
        return bundled_aois()
    return [load_aoi(a) for a in aois]


class _LocalPool:
    """A process pool (or in-process when workers == 1) with a submit API."""

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        self.pool = ProcessPoolExecutor(self.workers) if self.workers > 1 else None

    def run(self, fn, tasks, options) -> Iterable[TaskOutcome]:
        if self.pool is None:
            for t in tasks:
                yield fn(t, options)
            return
        pending = set()
        it = iter(tasks)
        for t in it:  # keep at most 2 per worker in flight: results stream back
            pending.add(self.pool.submit(fn, t, options))
            if len(pending) >= 2 * self.workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(self.pool.submit(fn, nxt, options))

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


class _DaskPool:
    """Submit tasks to a dask.distributed cluster (an address or a Client)."""

    def __init__(self, scheduler, workers: int = 2):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as e:  # pragma: no cover
            raise InputError("--scheduler", "needs dask[distributed]: pip install 'border-traffic-monitor[dask]'") from e
        self._own = None
        if scheduler in ("local", "local-cluster"):
            self._own = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                     dashboard_address=None)
            self.client = Client(self._own)
        elif hasattr(scheduler, "submit"):
            self.client = scheduler
        else:
            try:
                self.client = Client(scheduler, timeout="10s")
            except Exception as e:
                raise InputError(scheduler, f"cannot connect to the Dask scheduler ({e})") from None

    def run(self, fn, tasks, options):
        from dask.distributed import as_completed

        futs = [self.client.submit(fn, t, options, pure=False) for t in tasks]
        for f in as_completed(futs):
            yield f.result()

    def close(self):
        if self._own is not None:
            self.client.close()
            self._own.close()


def run_batch(
    inputs: Sequence,
    *,
    aois: Sequence | None = None,
    store=None,
    workers: int = 1,
    scheduler=None,
    options: dict | None = None,
    score: bool = True,
    progress: Callable[[int, int, TaskOutcome], None] | None = None,
) -> BatchSummary:
    """Process the new scene x AOI pairs found in ``inputs`` into ``store``.

    inputs: files, folders or STAC JSON (see :func:`monitor.scenes.find_scenes`).
    aois: AOI ids, paths or :class:`AOI` objects (default: all bundled).
    store: a :class:`monitor.store.Store` or a path (default: $MONITOR_STORE
        or ./monitor.db).
    workers: local worker processes; ignored when ``scheduler`` is given.
    scheduler: a Dask scheduler address, a ``dask.distributed.Client``, or
        ``"local"`` for a local Dask cluster of ``workers`` processes.
    options: ``{"read": {...read_chip kwargs}, "detect": {...}}``.
    score: after writing, score the store and raise new alerts.
    progress: called as ``progress(done, total, outcome)`` after each pair.
    """
    from monitor.scenes import find_scenes
    from monitor.store import Store

    t_start = time.perf_counter()
    st = store if isinstance(store, Store) else Store(store)
    aoi_objs = _resolve_aois(aois)
    summary = BatchSummary()
    errs: list = []
    scenes = find_scenes(list(inputs), errors=errs)
    failures = [(getattr(e, "source", "?"), str(e)) for e in errs]
    for path, reason in failures:
        summary.failures.append({"scene": str(path), "aoi": None, "reason": reason})
        st.record_failure(str(path), None, reason)
    # A scene with no time is refused by the store (shared/DESIGN.md).
    timed = []
    for s in scenes:
        if s.acquired is None:
            reason = f"{s.path}: no acquisition time (STAC datetime, TIFFTAG_DATETIME or a date in the name)"
            summary.failures.append({"scene": str(s.path), "aoi": None, "reason": reason})
            st.record_failure(s, None, reason)
        else:
            timed.append(s)
    tasks = pair_scenes(timed, aoi_objs)
    versions = {a.id: detector_versions(a) for a in aoi_objs}
    todo = []
    for t in tasks:
        if all(st.is_processed(t.scene.id, t.aoi.id, name, ver) for name, ver in versions[t.aoi.id].items()):
            summary.pairs_skipped += 1
        else:
            todo.append(t)
    per_scene: dict[str, list[str]] = {}
    for t in tasks:
        per_scene.setdefault(t.scene.id, [])
    failed_scenes: set[str] = {f["scene"] for f in summary.failures}
    done_scenes: set[str] = set()
    summary.scenes = len(scenes) + len(failures)

    pool = _DaskPool(scheduler, workers) if scheduler else _LocalPool(workers)
    scene_by_id = {s.id: s for s in timed}
    n = 0
    try:
        for out in pool.run(process_task, todo, options or {}):
            n += 1
            summary.read_s += out.read_s
            summary.detect_s += out.detect_s
            if out.ok:
                st.write_result(scene_by_id[out.scene_id], out.aoi_id, out.results)
                summary.pairs_processed += 1
                done_scenes.add(out.scene_id)
            else:
                st.record_failure({"id": out.scene_id, "path": out.scene_path}, out.aoi_id, out.error)
                summary.pairs_failed += 1
                summary.failures.append({"scene": out.scene_path, "aoi": out.aoi_id, "reason": out.error})
                failed_scenes.add(out.scene_path)
            if progress is not None:
                progress(n, len(todo), out)
    finally:
        pool.close()

    todo_ids = {t.scene.id for t in todo}
    failed_ids = {s.id for s in timed if str(s.path) in failed_scenes}
    summary.failed = len(failed_scenes)
    summary.processed = len(todo_ids - failed_ids)
    summary.skipped = len([s for s in timed if s.id not in todo_ids and s.id in per_scene])
    if score:
        from monitor.alerts import raise_alerts

        new = raise_alerts(st, aoi=[a.id for a in aoi_objs])
        summary.alerts = [a.to_dict() for a in new]
    summary.wall_s = time.perf_counter() - t_start
    return summary


def default_workers() -> int:
    """Worker processes to use by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return max(1, os.cpu_count() or 1)


def is_terminal() -> bool:
    return sys.stderr.isatty()
