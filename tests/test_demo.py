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
    """A small demo: two years of Tumangang and Najin, processed and reported."""
    from monitor.demo import run_demo

    d = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    rep = run_demo(d, start="2023-07-01", end="2023-12-31", aois=["tumangang", "najin"], workers=2,
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
    assert any("processed" in ln for ln in lines)


def test_demo_rerun_skips_everything(demo_dir):
    from monitor.demo import run_demo

    d, _, _ = demo_dir
    before = len(Store(d / "monitor.db").observations())
    lines: list[str] = []
    run_demo(d, start="2023-07-01", end="2023-12-31", aois=["tumangang", "najin"], workers=1, echo=lines.append)
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
    scene = sorted((d / "scenes" / "tumangang").rglob("*.tif"))[-1]
    out = tmp_path / "ql.png"
    r = CliRunner().invoke(app, ["quicklook", str(scene), "--aoi", "tumangang", "--out", str(out)])
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
