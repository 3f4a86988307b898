"""``monitor plot``, ``monitor quicklook`` and ``monitor demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from monitor.errors import InputError


def plot_cmd(
    aoi: str = typer.Option(..., "--aoi", help="AOI id."),
    cls: Optional[str] = typer.Option(None, "--class", help="Object class (default: the AOI's main class)."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    series: Optional[str] = typer.Option(None, "--series", help="External series to draw on a second axis."),
    store: Optional[str] = typer.Option(None, "--store", help="Store file (default $MONITOR_STORE or ./monitor.db)."),
    window_years: float = typer.Option(5.0, "--window-years", help="Baseline window in years."),
):
    """Plot an AOI's counts over time with the baseline band, low-coverage points and alerts."""
    from monitor.cli import fail
    from monitor.plots import plot_store
    from monitor.store import Store

    try:
        p = plot_store(Store(store), aoi, out, cls=cls, series=series, window_years=window_years)
    except InputError as e:
        raise fail(e)
    typer.echo(str(p))


def quicklook_cmd(
    scene: str = typer.Argument(..., help="A GeoTIFF/COG or STAC item JSON."),
    aoi: str = typer.Option(..., "--aoi", help="AOI id or file."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    gsd: Optional[float] = typer.Option(None, "--gsd", help="Read at this ground sample distance (m)."),
    truth: bool = typer.Option(True, "--truth/--no-truth",
                               help="Draw the truth outlines of a synthetic scene (SCENE.truth.geojson beside it)."),
):
    """Draw the AOI's chip of SCENE with each detection outlined and numbered."""
    from monitor.aoi import load_aoi
    from monitor.cli import fail
    from monitor.demo import truth_objects
    from monitor.detect import detect
    from monitor.imagery import read_chip
    from monitor.plots import quicklook
    from monitor.scenes import open_scene

    try:
        a = load_aoi(aoi)
        chip = read_chip(open_scene(scene), a, gsd_m=gsd)
        results = detect(chip)
        tr = truth_objects(scene) if truth and not str(scene).endswith(".json") else None
        p = quicklook(chip, results, out, truth=list(tr.to_crs(chip.crs).geometry) if tr is not None else None)
    except InputError as e:
        raise fail(e)
    typer.echo(str(p))


def demo_cmd(
    dir: Path = typer.Option(Path("monitor-demo"), "--dir", help="Folder for the archive, store and report."),
    start: str = typer.Option("2018-01-01", "--start", help="First date of the synthetic archive."),
    end: str = typer.Option("2024-09-30", "--end", help="Last date of the synthetic archive."),
    workers: int = typer.Option(0, "--workers", help="Worker processes (default: the CPUs available)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the synthetic archive."),
):
    """Show the whole tool working: synthetic archive -> batch -> alerts -> report."""
    from monitor.cli import fail
    from monitor.demo import run_demo

    try:
        rep = run_demo(dir, start=start, end=end, workers=workers or None, seed=seed, echo=typer.echo)
    except InputError as e:
        raise fail(e)
    typer.echo(f"report: {rep}")


def register(app: typer.Typer) -> None:
    app.command("plot")(plot_cmd)
    app.command("quicklook")(quicklook_cmd)
    app.command("demo")(demo_cmd)
