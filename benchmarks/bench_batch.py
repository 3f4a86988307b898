"""Batch throughput: scenes per second with 1 and 2 workers, and overhead.

Writes a synthetic archive of one AOI (default Khasan at 1 m, 40 scenes)
into a temporary folder, runs :func:`monitor.batch.run_batch` into a fresh
store with 1 and then 2 local workers, and prints:

    scenes/s 1 worker: X
    scenes/s 2 workers: Y
    speedup 2/1: Z            (goal >= 1.7 on 2 cores)
    overhead share 1 worker: W  (wall time outside reading and detecting; goal <= 10%)
    overhead share 2 workers: V (1 - (read + detect) / (workers x wall))

Usage: python benchmarks/bench_batch.py [--aoi khasan] [--scenes 40] [--gsd 1.0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aoi", default="khasan")
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--gsd", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from monitor.aoi import load_aoi
    from monitor.batch import run_batch
    from monitor.synth import generate_archive

    aoi = load_aoi(args.aoi)
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        tmp = Path(tmp)
        start = date(2023, 1, 1)
        end = start + timedelta(days=10 * args.scenes)
        t0 = time.perf_counter()
        paths = generate_archive(aoi, start, end, tmp / "scenes", gsd_m=args.gsd, revisit_days=10,
                                 seed=args.seed, workers=2, dtype="uint8")
        paths = paths[: args.scenes]
        print(f"archive: {len(paths)} scenes of {aoi.id} at {args.gsd:g} m in {time.perf_counter() - t0:.1f} s")
        # warm the file cache and imports so both runs see the same conditions
        run_batch(paths[:2], aois=[aoi], store=tmp / "warm.db", workers=1, score=False)
        rates = {}
        for w in (1, 2):
            s = run_batch(paths, aois=[aoi], store=tmp / f"w{w}.db", workers=w)
            n = s.processed
            rates[w] = n / s.wall_s
            overhead = 1.0 - (s.read_s + s.detect_s) / (w * s.wall_s)
            print(f"scenes/s {w} worker{'s' if w > 1 else ''}: {rates[w]:.2f} "
                  f"({n} scenes, {s.failed} failed, wall {s.wall_s:.1f} s, read {s.read_s:.1f} s, "
                  f"detect {s.detect_s:.1f} s)")
            print(f"overhead share {w} worker{'s' if w > 1 else ''}: {overhead:.1%}")
        print(f"speedup 2/1: {rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
