"""``monitor synth scene | archive``: synthetic scenes with ground truth."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Optional

import typer

synth_app = typer.Typer(help="Render synthetic scenes (COG + STAC item + truth GeoJSON).", no_args_is_help=True)


@synth_app.command("scene")
def scene_cmd(
    aoi: str = typer.Option(..., "--aoi", help="Bundled AOI id or AOI file."),
    when: str = typer.Option(..., "--date", help="Acquisition date YYYY-MM-DD (or ISO time, UTC)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    gsd: float = typer.Option(0.5, "--gsd", help="Pixel size in metres."),
    sensor: str = typer.Option("optical", "--sensor", help="optical or sar."),
    cars: Optional[int] = typer.Option(None, "--cars", help="Railcars to place (rail yards)."),
    ships: Optional[int] = typer.Option(None, "--ships", help="Ships to place (ports)."),
    cloud: float = typer.Option(0.0, "--cloud", help="Cloud cover 0..1."),
    looks: int = typer.Option(4, "--looks", help="SAR looks (speckle)."),
    dtype: str = typer.Option("uint16", "--dtype", help="uint16, uint8 or float32 (optical)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    name: Optional[str] = typer.Option(None, "--name", help="File stem (default AOI_DATE_SENSOR)."),
):
    """Render one scene of an AOI and write NAME.tif, NAME.json (STAC), NAME.truth.geojson."""
    from monitor.aoi import load_aoi
    from monitor.cli import fail
    from monitor.errors import InputError
    from monitor.synth import render_port_scene, render_rail_scene, write_scene

    try:
        a = load_aoi(aoi)
        if sensor not in ("optical", "sar"):
            raise InputError(f"--sensor {sensor}", "must be 'optical' or 'sar'")
        if not 0 <= cloud <= 1:
            raise InputError(f"--cloud {cloud}", "cloud cover must be between 0 and 1")
        if dtype not in ("uint16", "uint8", "float32"):
            raise InputError(f"--dtype {dtype}", "must be uint16, uint8 or float32")
        try:
            date.fromisoformat(when[:10])
        except ValueError:
            raise InputError(f"--date {when}", "not a date (YYYY-MM-DD)") from None
        if a.is_port:
            sc = render_port_scene(a, gsd_m=gsd, when=when, seed=seed, ships=ships, sensor=sensor, looks=looks,
                                   cloud=cloud, dtype=dtype)
        else:
            sc = render_rail_scene(a, gsd_m=gsd, when=when, seed=seed, cars=cars, sensor=sensor, looks=looks,
                                   cloud=cloud, dtype=dtype)
        stem = name or f"{a.id}_{when[:10].replace('-', '')}_{sensor}"
        p = write_scene(sc, out, stem)
    except InputError as e:
        raise fail(e)
    c = sc.counts()
    typer.echo(f"{p} ({sc.shape[1]}x{sc.shape[0]} px, {gsd:g} m, {sc.sensor}, "
               + ", ".join(f"{k} {v}" for k, v in c.items()) + (f", dropped {sc.meta['dropped']}" if sc.meta.get("dropped") else "") + ")")


@synth_app.command("archive")
def archive_cmd(
    aoi: str = typer.Option(..., "--aoi", help="Bundled AOI id or AOI file."),
    start: str = typer.Option(..., "--start", help="First date YYYY-MM-DD."),
    end: str = typer.Option(..., "--end", help="Last date YYYY-MM-DD."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    gsd: float = typer.Option(1.0, "--gsd", help="Pixel size in metres."),
    scenario: Optional[Path] = typer.Option(None, "--scenario", help="Scenario JSON/YAML (default: bundled)."),
    revisit: Optional[float] = typer.Option(None, "--revisit-days", help="Mean days between scenes."),
    sensor: str = typer.Option("optical", "--sensor", help="optical or sar."),
    workers: int = typer.Option(1, "--workers", help="Processes."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
):
    """Render a multi-year archive whose counts follow a scenario."""
    from monitor.cli import fail
    from monitor.errors import InputError
    from monitor.synth.archive import generate_archive

    try:
        for lbl, v in (("--start", start), ("--end", end)):
            try:
                date.fromisoformat(v)
            except ValueError:
                raise InputError(f"{lbl} {v}", "not a date (YYYY-MM-DD)") from None
        paths = generate_archive(aoi, start, end, out, scenario=scenario, gsd_m=gsd, revisit_days=revisit,
                                 seed=seed, workers=workers, sensor=sensor)
    except InputError as e:
        raise fail(e)
    typer.echo(f"{len(paths)} scenes in {out} (archive.json, truth_counts.csv)")


def register(app: typer.Typer) -> None:
    app.add_typer(synth_app, name="synth")
