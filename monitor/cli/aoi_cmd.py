"""``monitor aoi list | show | validate | new``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import typer
from rich.console import Console
from rich.table import Table

from monitor.aoi import bundled_aois, load_aoi, read_aoi_file
from monitor.errors import InputError

aoi_app = typer.Typer(help="List, show and validate areas of interest.", no_args_is_help=True)


@aoi_app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """List the bundled AOIs with their sizes (areas in km², lengths in km/m)."""
    rows = [a.summary() for a in bundled_aois()]
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    t = Table(title="Bundled AOIs")
    for col in ("id", "name", "kind", "area km²", "tracks", "track km", "water km²", "berths", "berth m"):
        t.add_column(col, justify="left" if col in ("id", "name", "kind") else "right")
    for r in rows:
        t.add_row(r["id"], r["name"], r["kind"], f"{r['area_km2']:.3f}", str(r["tracks"]),
                  f"{r['track_km']:.2f}", f"{r['water_km2']:.3f}", str(r["berths"]), f"{r['berth_m']:.0f}")
    Console(width=140).print(t)


@aoi_app.command("show")
def show_cmd(ref: str = typer.Argument(..., help="A bundled AOI id or a path to an AOI file."),
             json_out: bool = typer.Option(False, "--json", help="Print the AOI as GeoJSON.")):
    """Show one AOI: its summary, or (--json) the whole FeatureCollection."""
    from monitor.cli import fail

    try:
        a = load_aoi(ref)
    except InputError as e:
        raise fail(e)
    if json_out:
        typer.echo(json.dumps(a.to_geojson(), indent=1))
        return
    s = a.summary()
    for k, v in s.items():
        typer.echo(f"{k:10} {v}")
    for f in a.features:
        typer.echo(f"  {f.role:7} {f.id}")


@aoi_app.command("validate")
def validate_cmd(files: List[Path] = typer.Argument(..., help="AOI GeoJSON files to check.")):
    """Check AOI files against the contract; exit 2 if any is refused."""
    bad = 0
    for p in files:
        try:
            a = read_aoi_file(p)
        except InputError as e:
            typer.echo(f"error: {e}", err=True)
            bad += 1
            continue
        s = a.summary()
        typer.echo(f"{p}: ok ({a.id}, {a.kind}, {s['tracks']} tracks, {len(a.water)} water, {s['berths']} berths)")
    if bad:
        raise typer.Exit(2)


@aoi_app.command("new")
def new_cmd(aoi_id: str = typer.Argument(..., help="Id of the new AOI (also its default name)."),
            out: Path = typer.Option(..., "--out", "-o", help="AOI GeoJSON file to write."),
            kind: str = typer.Option("rail_yard", "--kind", help="rail_yard or port."),
            bbox: str = typer.Option(None, "--bbox",
                                     help="west,south,east,north in WGS84 degrees (lon, lat)."),
            scene: str = typer.Option(None, "--scene",
                                      help="Use this scene's footprint (GeoTIFF/COG or STAC item) "
                                           "as the boundary instead of --bbox."),
            name: str = typer.Option(None, "--name", help="Display name (default: the id)."),
            country: str = typer.Option("unknown", "--country", help="Country code or name."),
            force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists.")):
    """Write a boundary-only AOI for a site of your own (tracks are traced from the
    imagery by `monitor detect`; draw them in QGIS for better counts)."""
    from monitor.aoi import new_aoi
    from monitor.cli import fail

    try:
        if (bbox is None) == (scene is None):
            raise InputError(str(out), "give exactly one of --bbox W,S,E,N or --scene FILE")
        if out.exists() and not force:
            raise InputError(str(out), "exists already (use --force to overwrite)")
        if bbox is not None:
            try:
                bounds = [float(v) for v in bbox.split(",")]
            except ValueError:
                bounds = None
            if bounds is None or len(bounds) != 4:
                raise InputError(bbox, "--bbox must be four numbers west,south,east,north")
            boundary = bounds
        else:
            from monitor.scenes import open_scene

            sc = open_scene(scene)
            if sc.footprint is None or sc.footprint.is_empty:
                raise InputError(scene, "the scene has no georeferenced footprint")
            boundary = sc.footprint
        a = new_aoi(aoi_id, kind, boundary, name=name, country=country, source=str(out))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(a.to_geojson(), indent=1))
    except InputError as e:
        raise fail(e)
    s = a.summary()
    typer.echo(f"{out}: {a.id} ({a.kind}, {s['area_km2']:.3f} km², boundary only)")


def register(app: typer.Typer) -> None:
    app.add_typer(aoi_app, name="aoi")
