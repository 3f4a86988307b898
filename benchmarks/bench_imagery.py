"""Benchmark: does reading an AOI cost the AOI's pixels, not the scene's size?

Writes (into a temporary folder, deleted afterwards) a 20000 x 20000 px
tiled, deflate-compressed uint8 COG at 0.5 m (10 km x 10 km, UTM 52N) and
a COG holding only a 2 km x 2 km window of it, then reads the same 2 km
AOI chip from both with :func:`monitor.imagery.read_chip`.

Prints
    read ratio: X    time to read the AOI from the big COG / from the window COG
                     (median of several reads; goal <= 1.5)
    memory ratio: Y  peak memory of the first read (RSS growth, measured in a
                     fresh process, so GDAL's own buffers count) / the chip's
                     array size (goal <= 3)
and, for information, the tracemalloc (Python/numpy) peak ratio.

Usage: python benchmarks/bench_imagery.py [--size 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

GSD = 0.5
AOI_M = 2000.0
ORIGIN = (620000.0, 4690000.0)  # UTM 52N, near Rajin
CRS = "EPSG:32652"


def write_big(path: str, size: int) -> None:
    """A tiled deflate COG of ``size`` x ``size`` uint8 with overviews."""
    import rasterio
    from rasterio.shutil import copy
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    tmp = path + ".tmp.tif"
    tr = from_origin(ORIGIN[0], ORIGIN[1], GSD, GSD)
    prof = dict(driver="GTiff", width=size, height=size, count=1, dtype="uint8", crs=CRS, transform=tr,
                tiled=True, blockxsize=512, blockysize=512, compress="deflate", BIGTIFF="IF_SAFER")
    rng = np.random.default_rng(1)
    step = 1024
    xx = np.arange(size)
    with rasterio.open(tmp, "w", **prof) as d:
        for r0 in range(0, size, step):
            h = min(step, size - r0)
            yy = np.arange(r0, r0 + h)[:, None]
            # a compressible texture (blocks, stripes) with a little noise
            a = ((xx[None, :] // 40 + yy // 40) % 7 * 20 + 30).astype(np.uint8)
            a += rng.integers(0, 4, a.shape, dtype=np.uint8)
            d.write(a, 1, window=Window(0, r0, size, h))
    with rasterio.Env(GDAL_NUM_THREADS="1"):
        copy(tmp, path, driver="COG", compress="deflate", blocksize=512, overview_resampling="nearest",
             BIGTIFF="IF_SAFER")
    os.remove(tmp)


def make_aoi():
    from pyproj import Transformer
    from shapely.geometry import Polygon

    from monitor.aoi import AOI

    size_m = ARGS.size * GSD
    cx, cy = ORIGIN[0] + size_m / 2, ORIGIN[1] - size_m / 2
    h = AOI_M / 2
    tr = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    xs, ys = tr.transform([cx - h, cx + h, cx + h, cx - h], [cy - h, cy - h, cy + h, cy + h])
    return AOI(id="bench", name="bench", country="-", kind="port", boundary=Polygon(list(zip(xs, ys))))


def write_window(big: str, path: str, aoi) -> None:
    """A COG of only the AOI's window (plus the chip margin) of ``big``."""
    import rasterio
    from rasterio.shutil import copy
    from rasterio.windows import from_bounds

    b = aoi.to_crs(CRS).boundary.bounds
    m = 100.0
    with rasterio.open(big) as src:
        w = from_bounds(b[0] - m, b[1] - m, b[2] + m, b[3] + m, src.transform).round_offsets().round_lengths()
        a = src.read(1, window=w)
        prof = dict(src.profile, width=a.shape[1], height=a.shape[0], transform=src.window_transform(w),
                    driver="GTiff", tiled=True, blockxsize=512, blockysize=512, compress="deflate")
    tmp = path + ".tmp.tif"
    with rasterio.open(tmp, "w", **prof) as d:
        d.write(a, 1)
    copy(tmp, path, driver="COG", compress="deflate", blocksize=512)
    os.remove(tmp)


def timed_read(path: str, aoi) -> float:
    from monitor.imagery import read_chip
    from monitor.scenes import open_scene

    t = time.perf_counter()
    chip = read_chip(open_scene(path), aoi)
    dt = time.perf_counter() - t
    assert chip.coverage > 0.99
    return dt


def first_read_memory(path: str) -> dict:
    """Run the first read in a fresh process; RSS growth and tracemalloc peak."""
    code = f"""
import json, resource, sys, tracemalloc
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
import bench_imagery as b
b.ARGS = b.parse(['--size', '{ARGS.size}'])
from monitor.imagery import read_chip
from monitor.scenes import open_scene
aoi = b.make_aoi()
scene = open_scene({path!r})
import rasterio, numpy, shapely, pyproj  # imports done before measuring
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'):
            return int(line.split()[1])
try:  # reset the peak-RSS mark (Linux), so the peak is the read's own
    open('/proc/self/clear_refs', 'w').write('5')
    r0 = status('VmRSS')
except OSError:
    r0 = None
if r0 is None:
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
chip = read_chip(scene, aoi)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
r1 = status('VmHWM') or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"rss_kb": r1 - r0, "tracemalloc": peak, "nbytes": chip.bands.nbytes,
                   "shape": list(chip.bands.shape)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"memory probe failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=20000, help="big COG width = height, pixels")
    p.add_argument("--repeat", type=int, default=5, help="timed reads per file")
    p.add_argument("--keep", default=None, help="keep the COGs in this folder (default: temp, deleted)")
    return p.parse_args(argv)


ARGS = None


def main(argv=None) -> int:
    global ARGS
    ARGS = parse(argv)
    d = ARGS.keep or tempfile.mkdtemp(prefix="bench_imagery_")
    os.makedirs(d, exist_ok=True)
    try:
        big = os.path.join(d, "big.tif")
        small = os.path.join(d, "window.tif")
        t0 = time.perf_counter()
        if not os.path.exists(big):
            write_big(big, ARGS.size)
        aoi = make_aoi()
        write_window(big, small, aoi)
        print(f"setup: {ARGS.size} x {ARGS.size} px COG {os.path.getsize(big) / 1e6:.1f} MB, "
              f"window COG {os.path.getsize(small) / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s")
        mem = first_read_memory(big)
        timed_read(big, aoi), timed_read(small, aoi)  # warm the OS page cache for both alike
        tb, ts = [], []
        for _ in range(ARGS.repeat):
            tb.append(timed_read(big, aoi))
            ts.append(timed_read(small, aoi))
        mb, ms = statistics.median(tb), statistics.median(ts)
        print(f"chip: {mem['shape']} float32 = {mem['nbytes'] / 1e6:.1f} MB; "
              f"read big {mb * 1000:.0f} ms, window {ms * 1000:.0f} ms (median of {ARGS.repeat})")
        print(f"read ratio: {mb / ms:.2f}")
        print(f"memory ratio: {mem['rss_kb'] * 1024 / mem['nbytes']:.2f}")
        print(f"tracemalloc ratio: {mem['tracemalloc'] / mem['nbytes']:.2f}")
    finally:
        if not ARGS.keep:
            shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
