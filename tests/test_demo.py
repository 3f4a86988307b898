"""The first ten minutes: demo, plots, quicklooks and notebooks on a small archive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.store import Store

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A small demo: three months of Tumangang and Najin (2 + 2 scenes), processed and reported."""
    from monitor.demo import run_demo

    d = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    rep = run_demo(d, start="2023-09-01", end="2023-11-30", aois=["tumangang", "najin"], workers=2,
                   echo=lines.append)
    return d, rep, lines


def test_demo_writes_store_report_and_pictures(demo_dir):
    d, rep, lines = demo_dir
    assert rep.exists() and rep.name == "report.md"
    text = rep.read_text()
    assert "## Alerts" in text
    for png in ("tumangang_series.png", "najin_series.png"):
        p = rep.parent / png
        assert p.exists() and p.stat().st_size > 10_000
        assert png in text
    st = Store(d / "monitor.db")
    obs = st.observations()
    assert set(obs["aoi_id"]) == {"tumangang", "najin"}
    assert (obs["class"] == "railcar").any() and (obs["class"] == "vessel").any()
    # the ships of at least 100 m are their own series, one observation beside each vessel count
    big = obs[obs["class"] == "vessel_large"].set_index("scene_id")
    ves = obs[obs["class"] == "vessel"].set_index("scene_id")
    assert set(big.index) == set(ves.index) and (big["count"] <= ves.loc[big.index, "count"]).all()
    det = st.detections(aoi="najin", cls="vessel")
    per_scene = det[det["length_m"] >= 100].groupby("scene_id").size()
    assert (big["count"] == per_scene.reindex(big.index).fillna(0)).all()  # the hulls of at least 100 m
    assert "najin_large_ships.png" in text and "vessel_large" in text
    assert any(ln.startswith("SHIPS Rajin (Najin) port, ships of at least 100 m: ") for ln in lines)
    assert any("processed" in ln for ln in lines)


def test_demo_rerun_skips_everything(demo_dir):
    from monitor.demo import run_demo

    d, _, _ = demo_dir
    before = len(Store(d / "monitor.db").observations())
    lines: list[str] = []
    run_demo(d, start="2023-09-01", end="2023-11-30", aois=["tumangang", "najin"], workers=1, echo=lines.append)
    assert len(Store(d / "monitor.db").observations()) == before
    assert any("0 scenes processed" in ln for ln in lines)


def test_plot_store_marks_alerts_and_low_coverage(tmp_path):
    from monitor.plots import plot_store

    st = Store(tmp_path / "p.db")
    t = pd.date_range("2018-01-01", "2023-12-31", freq="20D", tz="UTC")
    rng = np.random.default_rng(0)
    c = rng.poisson(10, len(t)).astype(float)
    c[-3] = 73
    cov = np.where(np.arange(len(t)) % 7 == 0, 0.3, 1.0)
    st.write_observations(pd.DataFrame({"scene_id": [f"s{i}" for i in range(len(t))], "aoi_id": "tumangang",
                                        "class": "railcar", "count": c, "acquired": t, "coverage": cov}))
    p = plot_store(st, "tumangang", tmp_path / "series.png")
    assert p.exists() and p.stat().st_size > 10_000


def test_plot_store_without_observations_is_an_input_error(tmp_path):
    from monitor.errors import InputError
    from monitor.plots import plot_store

    with pytest.raises(InputError, match="no observations"):
        plot_store(Store(tmp_path / "e.db"), "tumangang", tmp_path / "x.png")


def test_quicklook_cli_writes_png(demo_dir, tmp_path):
    from typer.testing import CliRunner

    from monitor.cli import app

    d, _, _ = demo_dir
    scene = sorted((d / "scenes" / "najin").rglob("*.tif"))[-1]
    out = tmp_path / "ql.png"
    r = CliRunner().invoke(app, ["quicklook", str(scene), "--aoi", "najin", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.exists() and out.stat().st_size > 10_000


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(nb, demo_dir, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    d, _, _ = demo_dir
    monkeypatch.setenv("MONITOR_DEMO_DIR", str(d))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    book = nbformat.read(nb, as_version=4)
    client = nbclient.NotebookClient(book, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(d)}})
    client.execute()
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


def test_report_counts_against_truth_and_draws_the_alert_scenes(demo_dir):
    from monitor.demo import accuracy, accuracy_summary

    d, rep, lines = demo_dir
    st = Store(d / "monitor.db")
    acc = accuracy(st, d / "scenes", ["tumangang", "najin"])
    obs = st.observations()
    assert len(acc) == len(obs)  # every observed scene has its truth
    truth = pd.read_csv(d / "scenes" / "tumangang" / "truth_counts.csv")
    r = acc[acc["aoi_id"] == "tumangang"].iloc[0]
    assert r["truth"] == int(truth.set_index("name").loc[r["scene_id"], "count"])
    assert (acc["error"] == acc["counted"] - acc["truth"]).all()
    assert {"counted_large", "truth_large"} <= set(acc.columns)
    summ = accuracy_summary(acc)
    assert set(summ["aoi_id"]) == {"tumangang", "najin"}
    text = rep.read_text()
    assert "## Counted vs truth" in text and "<details>" in text
    # every alert printed carries the scene's true count; every alert scene has a quicklook
    for a in [ln for ln in lines if ln.startswith("ALERT")]:
        assert "[synthetic truth:" in a
    from monitor.alerts import stored_alerts
    for a in stored_alerts(st)[:3]:
        assert (rep.parent / f"{a.scene_id}.png").exists()
    pics = [p for p in rep.parent.glob("*_2023*.png")]
    assert pics and all(p.name in text for p in pics)


def test_stored_result_is_what_was_counted(demo_dir):
    from monitor.aoi import load_aoi
    from monitor.demo import stored_result

    d, _, _ = demo_dir
    st = Store(d / "monitor.db")
    o = st.observations(aoi="tumangang").sort_values("count").iloc[-1]
    a = load_aoi("tumangang")
    res = stored_result(st, o["scene_id"], a, a.utm_crs)
    assert res[0].counts["railcar"] == int(o["count"]) and len(res[0].detections) == int(o["count"])
    assert res[0].detections and res[0].detections[0].geometry.area > 10  # m^2 in UTM, not degrees


def test_densest_window_holds_the_cluster():
    from monitor.plots import densest_window

    rng = np.random.default_rng(1)
    pts = np.vstack([rng.uniform(0, 1000, (20, 2)), rng.normal((700, 300), 10, (30, 2))])
    x0, y0, x1, y1 = densest_window(pts, 100, 50, (0, 0, 1000, 1000))
    assert x1 - x0 == 100 and y1 - y0 == 50
    assert x0 < 700 < x1 and y0 < 300 < y1
    # kept inside the bounds and no larger than them
    assert densest_window(pts[:1] * 0, 100, 50, (0, 0, 80, 1000))[0] == 0


def test_scenario_notes_and_several_shuttles(tmp_path):
    from monitor.errors import InputError
    from monitor.synth.scenario import load_scenario

    sc = load_scenario({"aois": {"p": {"kind": "port", "noise": 0.0, "shuttle_length_m": [100, 110], "keyframes": [
        {"date": "2020-01-01", "small": 0, "shuttle": 2.0, "note": "two ships always in port"}]}}})
    assert sc.expected("p", "port", "2021-01-01") == {"shuttle": 2.0, "small": 0.0}
    got = sc.draw("p", "port", "2021-01-01", np.random.default_rng(0))
    assert len(got["lengths"]) == 2 and all(100 <= x <= 110 for x in got["lengths"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"aois": {"x": {"keyframes": [{"date": "2020-01-01", "note": 3}]}}}')
    with pytest.raises(InputError, match="bad.json.*note") as e:
        load_scenario(bad)
    assert "\n" not in str(e.value)


def test_default_scenario_ports_follow_the_reporting():
    from monitor.synth.scenario import default_scenario

    sc = default_scenario()
    before = sc.expected("dunay", "port", "2022-06-01")
    after = sc.expected("dunay", "port", "2023-10-01")
    assert before["shuttle"] == 0 and before["large"] == 0 and after["shuttle"] > 0  # quiet Dunay, then the ships
    covid = sc.expected("najin", "port", "2021-06-01")
    oct23 = sc.expected("najin", "port", "2023-10-20")
    assert oct23["shuttle"] + oct23["large"] > 5 * (covid["shuttle"] + covid["large"])
    for aid in ("najin", "dunay"):
        assert all(isinstance(k.get("note", ""), str) for k in sc.entry(aid, "port")["keyframes"])


def test_plot_cli_draws_the_store_and_names_bad_input(demo_dir, tmp_path):
    from typer.testing import CliRunner

    from monitor.cli import app

    d, _, _ = demo_dir
    db = str(d / "monitor.db")
    out = tmp_path / "s.png"
    r = CliRunner().invoke(app, ["plot", "--aoi", "najin", "--store", db, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.exists() and out.stat().st_size > 10_000
    big = tmp_path / "big.png"
    r = CliRunner().invoke(app, ["plot", "--aoi", "najin", "--class", "vessel_large", "--store", db, "--out", str(big)])
    assert r.exit_code == 0, r.output
    assert big.exists() and big.stat().st_size > 10_000
    r = CliRunner().invoke(app, ["plot", "--aoi", "najin", "--store", db, "--series", "nope", "--out", str(out)])
    assert r.exit_code == 2 and "nope" in r.output and len(r.output.strip().splitlines()) == 1


def test_vessel_truth_counts_only_ships_the_detector_counts(tmp_path):
    """A 10 m skiff at 3 m pixels is rendered but not in the vessel truth:
    the detector counts ships of at least 15 m and 4 pixels."""
    import json

    import rasterio
    from rasterio.transform import from_origin

    from monitor.demo import truth_counts

    d = tmp_path / "dunay"
    d.mkdir()
    (d / "truth_counts.csv").write_text("date,name,class,count,requested\n2023-09-01,dunay_20230901,vessel,3,3\n")
    with rasterio.open(d / "dunay_20230901.tif", "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8",
                       crs="EPSG:32652", transform=from_origin(500000, 4700000, 3.0, 3.0)) as ds:
        ds.write(np.zeros((1, 8, 8), "uint8"))
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [131.1, 42.6]},
              "properties": {"class": "vessel", "length_m": L}} for L in (10.2, 16.0, 120.0)]
    (d / "dunay_20230901.truth.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    assert truth_counts(tmp_path, "dunay")["truth"].tolist() == [2]
    assert truth_counts(tmp_path, "dunay", min_vessel_length_m=None)["truth"].tolist() == [3]
    assert truth_counts(tmp_path, "dunay", min_vessel_length_m=50.0)["truth"].tolist() == [1]
