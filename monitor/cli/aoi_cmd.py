"""``monitor aoi list | show | validate``."""

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


def register(app: typer.Typer) -> None:
    app.add_typer(aoi_app, name="aoi")
