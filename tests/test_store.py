"""The SQLite store: idempotent writes, concurrency, locked/corrupt files, exports."""

import multiprocessing as mp
import sqlite3
import time

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from monitor.errors import StoreError
from monitor.store import SCHEMA_VERSION, Store, default_store_path, main_class


def _scene(i=1, day="2023-10-05"):
    return {"id": f"S{i}", "path": f"/data/s{i}.tif", "acquired": f"{day}T02:00:00Z", "sensor": "optical",
            "gsd_m": 0.5}


def _result(n=3, version="1.0"):
    dets = [{"cls": "railcar", "score": 0.9, "length_m": 14.0, "width_m": 3.0, "properties": {"track": "t1"},
             "geometry": box(300000 + 20 * k, 4700000, 300014 + 20 * k, 4700003)} for k in range(n)]
    return {"counts": {"railcar": n}, "intervals": {"railcar": (n - 1, n + 1)}, "coverage": 0.9,
            "detector": "railcars", "version": version, "crs": "EPSG:32652", "detections": dets}


def test_default_path_follows_env(monkeypatch, tmp_path):
    monkeypatch.delenv("MONITOR_STORE", raising=False)
    assert str(default_store_path()) == "monitor.db"
    monkeypatch.setenv("MONITOR_STORE", str(tmp_path / "x.db"))
    assert default_store_path() == tmp_path / "x.db"
    with Store() as s:
        assert s.path == tmp_path / "x.db" and s.schema_version == SCHEMA_VERSION


def test_write_result_reingest_replaces(tmp_path):
    s = Store(tmp_path / "m.db")
    ids1 = s.write_result(_scene(), "tumangang", [_result(3)])
    ids2 = s.write_result(_scene(), "tumangang", [_result(5)])
    assert ids1 == ids2
    obs = s.observations()
    assert len(obs) == 1 and obs["count"].iloc[0] == 5 and obs["count_lo"].iloc[0] == 4
    assert str(obs["acquired"].dt.tz) == "UTC"
    det = s.detections()
    assert len(det) == 5 and det.crs.to_epsg() == 4326
    lon, lat = det.geometry.iloc[0].centroid.coords[0]
    assert 126 < lon < 130 and 40 < lat < 44  # reprojected from UTM 52N
    assert s.is_processed("S1", "tumangang", "railcars", "1.0")
    assert not s.is_processed("S1", "tumangang", "railcars", "2.0")
    assert not s.is_processed("S2", "tumangang")
    # a new detector version is kept beside the old one, reads give the latest
    s.write_result(_scene(), "tumangang", [_result(7, version="2.0")])
    assert len(s.observations(latest=False)) == 2
    assert s.observations()["count"].tolist() == [7]


def test_scene_without_time_is_refused(tmp_path):
    s = Store(tmp_path / "m.db")
    with pytest.raises(StoreError, match="S9: scene has no acquisition time"):
        s.write_result({"id": "S9", "acquired": None}, "tumangang", [_result()])
    assert s.observations().empty


def test_failures_and_filters(tmp_path):
    s = Store(tmp_path / "m.db")
    s.record_failure("/data/bad.tif", "tumangang", "not a GeoTIFF\n(line 2)")
    f = s.failures()
    assert f["reason"].tolist() == ["not a GeoTIFF (line 2)"] and f["path"].tolist() == ["/data/bad.tif"]
    s.write_result(_scene(1, "2020-01-01"), "tumangang", [_result(2)])
    s.write_result(_scene(2, "2023-01-01"), "khasan", [_result(4)])
    assert s.observations(aoi="khasan")["count"].tolist() == [4]
    assert s.observations(since="2021-01-01")["scene_id"].tolist() == ["S2"]
    assert len(s.detections(aoi="tumangang", cls="railcar")) == 2


def test_bulk_ingest_is_idempotent(tmp_path):
    s = Store(tmp_path / "m.db")
    n = 500
    df = pd.DataFrame({"scene_id": [f"s{i}" for i in range(n)], "aoi_id": "a", "class": "railcar",
                       "count": np.arange(n), "acquired": pd.date_range("2020", periods=n, freq="D", tz="UTC")})
    s.write_observations(df)
    s.write_observations(df.assign(count=df["count"] + 1))
    obs = s.observations()
    assert len(obs) == n and obs["count"].iloc[0] == 1 and obs["coverage"].iloc[0] == 1.0


def _writer(path, k, n):
    s = Store(path, timeout=60)
    for i in range(n):
        s.write_result(_scene(k * 1000 + i), "tumangang", [_result(2)])
    s.close()


def test_two_writers_at_once(tmp_path):
    path = tmp_path / "m.db"
    Store(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), k, 25)) for k in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    s = Store(path)
    assert len(s.observations()) == 50 and len(s.detections()) == 100


def test_locked_database_clear_error_nothing_lost(tmp_path):
    path = tmp_path / "m.db"
    s = Store(path, timeout=0.3)
    s.write_result(_scene(1), "tumangang", [_result(2)])
    other = sqlite3.connect(str(path), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    t0 = time.perf_counter()
    with pytest.raises(StoreError) as e:
        s.write_result(_scene(2), "tumangang", [_result(2)])
    assert time.perf_counter() - t0 >= 0.25
    msg = str(e.value)
    assert str(path) in msg and "locked" in msg and "\n" not in msg
    other.execute("ROLLBACK")
    other.close()
    assert s.observations()["scene_id"].tolist() == ["S1"]
    s.write_result(_scene(2), "tumangang", [_result(2)])  # usable again
    assert len(s.observations()) == 2


def test_corrupt_file_untouched(tmp_path):
    path = tmp_path / "notes.db"
    data = b"these are my notes, not a database\n" * 200
    path.write_bytes(data)
    with pytest.raises(StoreError, match="not a SQLite database") as e:
        Store(path)
    assert str(e.value).startswith(str(path))
    assert path.read_bytes() == data


def test_unwritable_path(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "missing" / "m.db")
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


def test_newer_schema_refused(tmp_path):
    path = tmp_path / "m.db"
    con = sqlite3.connect(str(path))
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_series_and_exports(tmp_path):
    s = Store(tmp_path / "m.db")
    s.write_result(_scene(1), "tumangang", [_result(2)])
    s.write_series("exports", pd.DataFrame({"time": ["2023-01-01", "2023-02-01"], "value": [1.0, 2.0]}), "USD m")
    s.write_series("exports", pd.DataFrame({"time": ["2023-02-01"], "value": [3.0]}), "USD m")
    assert s.series("exports")["value"].tolist() == [1.0, 3.0]
    with pytest.raises(StoreError, match="nope: no series"):
        s.series("nope")
    for name in ("o.csv", "o.json", "o.parquet", "o.gpkg"):
        s.export(tmp_path / name, table="observations")
    assert pd.read_csv(tmp_path / "o.csv")["count"].tolist() == [2]
    assert pd.read_parquet(tmp_path / "o.parquet")["scene_id"].tolist() == ["S1"]
    assert pd.read_json(tmp_path / "o.json")["aoi_id"].tolist() == ["tumangang"]
    import geopandas as gpd

    s.export(tmp_path / "d.gpkg", table="detections")
    d = gpd.read_file(tmp_path / "d.gpkg")
    assert len(d) == 2 and d.crs.to_epsg() == 4326
    with pytest.raises(StoreError, match="unknown export format"):
        s.export(tmp_path / "o.xls")
    with pytest.raises(StoreError, match="no such table"):
        s.export(tmp_path / "o.csv", table="nope")


def _vessels(n_small=3, n_large=1, version="1.2", by_size=True):
    """A vessel detector's result: hulls with their size class, counts by size class in extras."""
    lengths = [20.0] * n_small + [120.0] * n_large
    dets = [{"cls": "vessel", "score": 0.99, "length_m": L, "width_m": L / 5,
             "properties": {"size_class": "large_gt100m" if L >= 100 else "small_lt30m"},
             "geometry": box(500000 + 200 * k, 4700000, 500000 + 200 * k + L, 4700000 + L / 5)}
            for k, L in enumerate(lengths)]
    extras = {"count_by_size": {"small_lt30m": n_small, "medium_30_100m": 0, "large_gt100m": n_large}} if by_size else {}
    return {"counts": {"vessel": len(dets)}, "coverage": 0.8, "detector": "vessels", "version": version,
            "crs": "EPSG:32652", "detections": dets, "extras": extras}


def test_size_class_is_its_own_observation(tmp_path):
    s = Store(tmp_path / "m.db")
    ids = s.write_result(_scene(1), "najin", [_vessels(3, 2)])
    assert len(ids) == 2  # vessel, then vessel_large
    obs = s.observations().set_index("class")
    assert obs.loc["vessel", "count"] == 5 and obs.loc["vessel_large", "count"] == 2
    assert obs.loc["vessel_large", "coverage"] == 0.8 and obs.loc["vessel_large", "detector"] == "vessels"
    # the hulls are stored once, under the parent class
    assert len(s.detections()) == 5 and set(s.detections()["class"]) == {"vessel"}
    assert s.detections(cls="vessel_large").empty
    assert main_class(s.observations(aoi="najin")) == "vessel"  # as many rows, but the size class is not the main one
    # re-writing replaces both; a scene with no big ship gets a zero, not a gap
    s.write_result(_scene(1), "najin", [_vessels(1, 0)])
    assert s.observations().set_index("class")["count"].to_dict() == {"vessel": 1, "vessel_large": 0}
    # no size counts, or size_classes={}: only the classes of counts
    s.write_result(_scene(2), "najin", [_vessels(2, 1, by_size=False)])
    s.write_result(_scene(3), "najin", [_vessels(2, 1)], size_classes={})
    assert s.observations(cls="vessel_large")["scene_id"].tolist() == ["S1"]
    # railcars report no size classes
    s.write_result(_scene(4), "tumangang", [_result(3)])
    assert s.observations(aoi="tumangang")["class"].tolist() == ["railcar"]


def test_size_classes_derived_for_an_older_store(tmp_path):
    s = Store(tmp_path / "m.db")
    for i, (ns, nl) in enumerate([(3, 0), (2, 2), (0, 1)], start=1):
        s.write_result(_scene(i, f"2023-0{i}-01"), "dunay", [_vessels(ns, nl)], size_classes={})
    s.write_result(_scene(9), "tumangang", [_result(3)])
    assert s.observations(cls="vessel_large").empty
    assert s.add_size_classes() == 3
    got = s.observations(cls="vessel_large")
    assert got["count"].tolist() == [0, 2, 1] and (got["coverage"] == 0.8).all()
    assert (got["version"] == "1.2").all() and set(got["aoi_id"]) == {"dunay"}
    assert s.add_size_classes() == 0  # idempotent
    assert len(s.observations()) == 3 + 3 + 1


def test_alert_upgraded_when_a_later_run_finds_more(tmp_path):
    from monitor.store import merge_kinds

    assert merge_kinds("spike", "rise") == "spike+rise" and merge_kinds("rise+spike", "record") == "spike+record+rise"
    s = Store(tmp_path / "m.db")
    a = {"aoi_id": "port", "cls": "vessel_large", "kind": "spike", "acquired": "2024-02-16T02:00:00Z",
         "scene_id": "p1", "count": 3, "score": 5.0, "message": "Port: 3 ships on 2024-02-16, an unusual spike"}
    [i] = s.write_alerts([a])
    s.acknowledge([i])
    s.mark_delivered([i])
    assert s.write_alerts([a]) == []  # the same finding again: nothing new
    both = dict(a, kind="spike+rise", message="Port: 3 ships on 2024-02-16, an unusual spike; 6 ships in 4 scenes")
    assert s.write_alerts([both]) == [i]  # upgraded in place, new again
    row = s.alerts().iloc[0]
    assert len(s.alerts()) == 1 and row["kind"] == "spike+rise" and row["message"] == both["message"]
    assert row["state"] == "new" and pd.isna(row["delivered"])
    # a finding that does not cover the old one keeps the old words in front
    rec = dict(a, kind="record", message="Port: 3 ships on 2024-02-16, the highest since 2019-01")
    assert s.write_alerts([rec]) == [i]
    row = s.alerts().iloc[0]
    assert row["kind"] == "spike+record+rise"
    assert row["message"] == both["message"] + "; 3 ships on 2024-02-16, the highest since 2019-01"
    assert s.write_alerts([both, rec]) == []
