"""Speed of the synthetic scene generator (prints figures; machine-dependent).

    python benchmarks/bench_synth.py [--archive N] [--aoi tumangang] [--workers 2]

- render of a 4000 x 4000 px rail scene (0.5 m) and a 4000 x 4000 port scene;
- an archive of N scenes at 1 m for one bundled AOI (written as COGs).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

from monitor.synth import demo_port_aoi, demo_rail_aoi, render_port_scene, render_rail_scene
from monitor.synth.archive import archive_plan, generate_archive


def square_yard(side_m: float):
    """The demo yard (12 tracks, 1900 m) in a square boundary ``side_m`` wide: 4000 x 4000 px at 0.5 m."""
    import dataclasses

    from pyproj import Transformer
    from shapely.geometry import box

    yard = demo_rail_aoi(n_tracks=12, length_m=1900.0)
    u = yard.to_crs()
    c = u.boundary.centroid
    sq = box(c.x - side_m / 2, c.y - side_m / 2, c.x + side_m / 2, c.y + side_m / 2)
    tr = Transformer.from_crs(u.crs, yard.crs, always_xy=True)
    from monitor.aoi import reproject
    return dataclasses.replace(yard, boundary=reproject(sq, tr))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archive", type=int, default=40, help="scenes in the archive benchmark (issue: 300)")
    ap.add_argument("--aoi", default="tumangang")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-render", action="store_true", help="only the archive benchmark")
    a = ap.parse_args()
    if not a.no_render:
        single_renders()
    archive(a.aoi, a.archive, a.workers)


def _cpu() -> float:
    """CPU seconds used by this process and its finished children (load-independent, unlike wall time)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def single_renders():
    yard = square_yard(2000.0)
    render_rail_scene(yard, gsd_m=4.0, cars=10)  # warm-up (imports, caches)
    t, c = time.perf_counter(), _cpu()
    s = render_rail_scene(yard, gsd_m=0.5, when="2024-06-17", seed=1, cars=200, cloud=0.2, margin_m=0.0)
    dt, dc = time.perf_counter() - t, _cpu() - c
    print(f"rail render {s.shape[1]}x{s.shape[0]} px @0.5 m, {len(s.truth)} cars, cloud 0.2: {dt:.2f} s "
          f"(cpu {dc:.2f} s; {s.shape[0] * s.shape[1] / dt / 1e6:.2f} Mpx/s)")
    t, c = time.perf_counter(), _cpu()
    s = render_port_scene(demo_port_aoi(), gsd_m=0.25, when="2023-10-19", seed=1, ships=15, margin_m=150)
    dt, dc = time.perf_counter() - t, _cpu() - c
    print(f"port render {s.shape[1]}x{s.shape[0]} px @0.25 m, {len(s.truth)} ships: {dt:.2f} s "
          f"(cpu {dc:.2f} s; {s.shape[0] * s.shape[1] / dt / 1e6:.2f} Mpx/s)")


def archive(aoi: str, n: int, workers: int):
    """N scenes at 1 m over 2018-2026 (revisit chosen to give about N), written as COGs."""
    revisit = 3000 / n * 0.5
    plan = archive_plan(aoi, "2018-01-01", "2026-06-30", revisit_days=revisit)
    end = plan[min(n, len(plan)) - 1]["date"]
    with tempfile.TemporaryDirectory() as d:
        t, c = time.perf_counter(), _cpu()
        paths = generate_archive(aoi, "2018-01-01", end, d, gsd_m=1.0, revisit_days=revisit, workers=workers)
        dt, dc = time.perf_counter() - t, _cpu() - c
        mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(f"archive {aoi} @1 m: {len(paths)} scenes in {dt:.1f} s with {workers} workers "
          f"({dt / len(paths):.2f} s/scene; 300 scenes ~ {300 * dt / len(paths):.0f} s); "
          f"cpu {dc / len(paths):.2f} s/scene (300 scenes on {workers} idle cores ~ {300 * dc / len(paths) / workers:.0f} s); "
          f"{mb:.0f} MB/scene; peak RSS of a process {rss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
