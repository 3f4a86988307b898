"""Batch runs: new-only processing, bad scenes, kill -9, concurrent runs, Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from monitor.batch import pair_scenes, run_batch
from monitor.scenes import find_scenes
from monitor.store import Store

LON0, LAT0 = 130.60, 42.42


def small_yard_aoi(path: Path) -> Path:
    """A 400 m x 120 m rail AOI with two parallel tracks 5 m apart (WGS84)."""
    from pyproj import Transformer

    to_wgs = Transformer.from_crs(32652, 4326, always_xy=True)
    fwd = Transformer.from_crs(4326, 32652, always_xy=True)
    x0, y0 = fwd.transform(LON0, LAT0)

    def ll(x, y):
        return list(to_wgs.transform(x0 + x, y0 + y))

    feats = [{"type": "Feature", "properties": {"role": "boundary", "id": "testyard", "name": "Test yard",
                                                 "country": "XX", "kind": "rail_yard"},
              "geometry": {"type": "Polygon", "coordinates": [[ll(0, 0), ll(400, 0), ll(400, 120), ll(0, 120), ll(0, 0)]]}}]
    for i, y in enumerate((57.5, 62.5)):
        feats.append({"type": "Feature", "properties": {"role": "track", "id": f"t{i}", "gauge_mm": 1520},
                      "geometry": {"type": "LineString", "coordinates": [ll(20, y), ll(380, y)]}})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def write_yard_scene(path: Path, when: datetime, n_cars: int, seed: int = 0) -> Path:
    """A 0.5 m single-band GeoTIFF of the test yard with ``n_cars`` on track 0."""
    from pyproj import Transformer

    rng = np.random.default_rng(seed)
    fwd = Transformer.from_crs(4326, 32652, always_xy=True)
    x0, y0 = fwd.transform(LON0, LAT0)
    gsd = 0.5
    w, h = 1000, 400  # 500 m x 200 m, margin around the AOI
    ox, oy = x0 - 50, y0 + 140
    img = rng.normal(110, 6, (h, w)).astype(np.float32)
    ys = (oy - (y0 + np.array([57.5, 62.5]))) / gsd
    rows = np.arange(h)[:, None]
    for yc in ys:
        band = np.abs(rows - yc) < 2.2
        img = np.where(band, img - 20, img)
        for off in (-1.52, 1.52):
            img = np.where(np.abs(rows - (yc + off)) < 0.6, 170.0, img)
    cols = np.arange(w)[None, :]
    xstart = (x0 + 30 - ox) / gsd
    for k in range(n_cars):
        a = xstart + k * 15.0 / gsd
        b = a + 14.0 / gsd
        car = (cols >= a) & (cols < b) & (np.abs(rows - ys[0]) < 1.55 / gsd)
        img = np.where(car, 60.0 + 10 * (k % 3), img)
    prof = dict(driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs="EPSG:32652",
                transform=from_origin(ox, oy, gsd, gsd), tiled=True, blockxsize=256, blockysize=256,
                compress="deflate")
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.clip(img, 0, 255).astype(np.uint8), 1)
        dst.update_tags(TIFFTAG_DATETIME=when.strftime("%Y:%m:%d %H:%M:%S"))
        dst.set_band_description(1, "pan")
    return path


@pytest.fixture()
def archive(tmp_path):
    aoi = small_yard_aoi(tmp_path / "testyard.geojson")
    d = tmp_path / "scenes"
    d.mkdir()
    t0 = datetime(2023, 1, 2, 2, 0, tzinfo=timezone.utc)
    for i in range(6):
        write_yard_scene(d / f"yard_{i:02d}.tif", t0 + timedelta(days=14 * i), n_cars=3 + (i % 3), seed=i)
    return aoi, d


def totals(store_path):
    st = Store(store_path)
    obs = st.observations()
    out = (len(obs), int(obs["count"].sum()) if len(obs) else 0, len(st.detections()))
    st.close()
    return out


def test_new_only_processing(archive, tmp_path):
    aoi, d = archive
    db = tmp_path / "m.db"
    s1 = run_batch([d], aois=[aoi], store=db, workers=1)
    assert (s1.processed, s1.skipped, s1.failed) == (6, 0, 0)
    first = totals(db)
    assert first[0] == 6 and first[1] > 0
    s2 = run_batch([d], aois=[aoi], store=db, workers=1)
    assert (s2.processed, s2.skipped, s2.failed) == (0, 6, 0)
    write_yard_scene(d / "yard_99.tif", datetime(2023, 6, 1, tzinfo=timezone.utc), n_cars=4, seed=99)
    s3 = run_batch([d], aois=[aoi], store=db, workers=1)
    assert (s3.processed, s3.skipped) == (1, 6)
    assert totals(db)[0] == 7


def test_corrupt_scene_in_the_middle_does_not_stop_the_batch(archive, tmp_path):
    aoi, d = archive
    bad = d / "yard_03.tif"
    bad.write_bytes(bad.read_bytes()[:2000])  # truncated
    (d / "yard_02b.tif").write_bytes(b"not a tiff at all")
    db = tmp_path / "m.db"
    s = run_batch([d], aois=[aoi], store=db, workers=2)
    assert s.processed == 5
    assert s.failed == 2
    reasons = " ".join(f["reason"] for f in s.failures)
    assert "yard_03.tif" in reasons and "yard_02b.tif" in reasons
    st = Store(db)
    assert len(st.failures()) == 2
    assert len(st.observations()) == 5


def test_scene_without_time_is_refused_with_reason(archive, tmp_path):
    aoi, d = archive
    p = d / "undated.tif"
    write_yard_scene(p, datetime(2023, 1, 1, tzinfo=timezone.utc), 2)
    with rasterio.open(p, "r+") as ds:
        ds.update_tags(TIFFTAG_DATETIME="")
    s = run_batch([d], aois=[aoi], store=tmp_path / "m.db", workers=1)
    assert s.failed == 1 and "acquisition time" in s.failures[0]["reason"]
    assert s.processed == 6


def _cli(*args, env=None):
    return [sys.executable, "-m", "monitor", *map(str, args)]


def test_kill_9_mid_run_then_rerun_gives_exact_totals(archive, tmp_path):
    aoi, d = archive
    ref_db = tmp_path / "ref.db"
    run_batch([d], aois=[aoi], store=ref_db, workers=1)
    ref = totals(ref_db)

    db = tmp_path / "killed.db"
    p = subprocess.Popen(_cli("run", d, "--aoi", aoi, "--store", db, "--workers", "1"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    # Wait until at least one scene is written, then kill the whole group hard.
    deadline = time.time() + 60
    while time.time() < deadline:
        if db.exists():
            try:
                if totals(db)[0] >= 1:
                    break
            except Exception:
                pass
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    partial = totals(db)
    assert partial[0] < 6 or p.returncode != 0
    r = subprocess.run(_cli("run", d, "--aoi", aoi, "--store", db, "--json"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert totals(db) == ref


def test_two_concurrent_runs_do_not_corrupt_the_store(archive, tmp_path):
    aoi, d = archive
    db = tmp_path / "both.db"
    procs = [subprocess.Popen(_cli("run", d, "--aoi", aoi, "--store", db, "--workers", "1", "--json"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        s = json.loads(out)
        assert s["failed"] == 0
    st = Store(db)
    obs = st.observations()
    assert len(obs) == 6
    assert not obs.duplicated(["scene_id", "aoi_id", "class"]).any()
    assert st.con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_dask_local_cluster_gives_the_same_store_as_the_local_pool(archive, tmp_path):
    pytest.importorskip("dask.distributed")
    aoi, d = archive
    run_batch([d], aois=[aoi], store=tmp_path / "pool.db", workers=1, score=False)
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cl, \
            Client(cl) as client:
        s = run_batch([d], aois=[aoi], store=tmp_path / "dask.db", scheduler=client, score=False)
    assert s.processed == 6
    a = Store(tmp_path / "pool.db").observations().sort_values("scene_id")
    b = Store(tmp_path / "dask.db").observations().sort_values("scene_id")
    cols = ["scene_id", "aoi_id", "class", "count", "coverage", "detector", "version"]
    assert a[cols].reset_index(drop=True).equals(b[cols].reset_index(drop=True))


def test_pairing_uses_the_footprint(archive, tmp_path):
    aoi, d = archive
    from monitor.aoi import load_aoi

    scenes = find_scenes([d])
    far = load_aoi("najin")
    pairs = pair_scenes(scenes, [load_aoi(aoi), far])
    assert {t.aoi.id for t in pairs} == {"testyard"}
    assert len(pairs) == 6


def test_cli_run_json_summary(archive, tmp_path):
    aoi, d = archive
    from typer.testing import CliRunner

    from monitor.cli import app

    r = CliRunner().invoke(app, ["run", str(d), "--aoi", str(aoi), "--store", str(tmp_path / "c.db"),
                                 "--workers", "1", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert {"processed", "skipped", "failed", "alerts"} <= set(s)
    assert s["processed"] == 6
