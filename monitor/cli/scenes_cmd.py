"""``monitor scenes ls INPUT... [--aoi ID] [--json]``."""

from __future__ import annotations

import json
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

scenes_app = typer.Typer(help="Find scenes (GeoTIFF/COG files, folders, STAC) and show their metadata.",
                         no_args_is_help=True)


def scene_rows(inputs: list[str], aoi_refs: list[str] | None = None, recursive: bool = True):
    """(rows, errors): one JSON-ready dict per scene found in ``inputs``.

    Each row is :meth:`Scene.to_dict` plus ``coverage`` (share of each
    AOI's area inside the scene footprint, by AOI id; the bundled AOIs
    unless ``aoi_refs``) and ``aois`` (ids of the AOIs it touches).
    """
    from monitor.aoi import bundled_aois, load_aoi
    from monitor.scenes import find_scenes, scene_covers

    aois = [load_aoi(a) for a in aoi_refs] if aoi_refs else bundled_aois()
    errors: list = []
    scenes = find_scenes(inputs, recursive=recursive, errors=errors)
    rows = []
    for s in scenes:
        r = s.to_dict()
        cov = {a.id: round(scene_covers(s, a), 4) for a in aois}
        r["coverage"] = cov
        r["aois"] = [k for k, v in cov.items() if v > 0]
        rows.append(r)
    return rows, errors


@scenes_app.command("ls")
def ls_cmd(
    inputs: List[str] = typer.Argument(..., help="Raster files, STAC item/catalog JSON files, folders."),
    aoi: Optional[List[str]] = typer.Option(None, "--aoi", help="AOI id or file (repeatable); default: bundled AOIs."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Search folders recursively."),
):
    """List scenes: time (UTC), sensor, ground resolution, bands, and the AOIs they cover.

    Exits 2 after listing the rest if any input could not be read (each
    reason on stderr, one line naming the file).
    """
    from monitor.cli import fail
    from monitor.errors import InputError

    try:
        rows, errors = scene_rows(list(inputs), list(aoi) if aoi else None, recursive=recursive)
    except InputError as e:
        raise fail(e)
    if json_out:
        typer.echo(json.dumps(rows, indent=1))
    else:
        t = Table(title=f"{len(rows)} scene(s)")
        for col in ("id", "acquired (UTC)", "sensor", "gsd m", "crs", "bands", "cloud %", "AOIs (coverage)", "path"):
            t.add_column(col, justify="right" if col in ("gsd m", "cloud %") else "left")
        for r in rows:
            cov = ", ".join(f"{k} {v:.0%}" for k, v in r["coverage"].items() if v > 0) or "-"
            t.add_row(r["id"], r["acquired"] or "-", r["sensor"],
                      f"{r['gsd_m']:.2f}" if r["gsd_m"] is not None else "-", str(r["crs"]),
                      " ".join(r["bands"]),
                      f"{r['cloud_cover']:.0f}" if r["cloud_cover"] is not None else "-", cov, r["path"])
        Console(width=200).print(t)
    for e in errors:
        typer.echo(f"error: {e}", err=True)
    if errors:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(scenes_app, name="scenes")
