"""``monitor aoi trace SCENE... --aoi ID|FILE --out FILE.geojson``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer


def trace_cmd(
    scenes: List[str] = typer.Argument(..., help="One or more GeoTIFF/COG paths or STAC items of the AOI."),
    aoi: str = typer.Option(..., "--aoi", help="A bundled AOI id or an AOI file."),
    out: Path = typer.Option(..., "--out", help="Write the AOI with traced tracks here (GeoJSON)."),
    merge: str = typer.Option("replace", "--merge", help="replace | refine | add: what to do with existing tracks."),
    gsd: Optional[float] = typer.Option(None, "--gsd", help="Read the chips at this pixel size (metres)."),
    min_length: float = typer.Option(50.0, "--min-length", help="Shortest traced line kept (metres)."),
):
    """Trace rail track centrelines in the AOI from imagery and write a new AOI file."""
    from monitor.aoi import load_aoi
    from monitor.cli import fail
    from monitor.errors import InputError
    from monitor.imagery import read_chip
    from monitor.scenes import open_scene
    from monitor.trace import MERGES, trace_aoi

    if merge not in MERGES:
        raise fail(InputError(f"--merge {merge}", f"must be one of {', '.join(MERGES)}"))
    try:
        a = load_aoi(aoi)
    except InputError as e:
        raise fail(e)
    chips, ref = [], None
    for s in scenes:
        try:
            sc = open_scene(s)
            if sc.sensor != "optical":
                raise InputError(s, f"track tracing needs an optical scene, not {sc.sensor}")
            c = read_chip(sc, a, gsd_m=gsd if ref is None else (gsd or ref.gsd_m),
                          crs=None if ref is None else ref.crs)
        except InputError as e:
            typer.echo(str(e), err=True)   # one bad scene does not stop the others
            continue
        ref = ref or c
        chips.append(c)
    if not chips:
        raise fail(InputError(", ".join(scenes), "no readable scene to trace tracks in"))
    try:
        traced = trace_aoi(chips, a, merge=merge, min_length_m=min_length)
    except InputError as e:
        raise fail(e)
    try:
        out.write_text(json.dumps(traced.to_geojson()), encoding="utf-8")
    except OSError as e:
        raise fail(InputError(out, f"cannot write AOI file ({e.strerror or e})"))
    n = len(traced.tracks)
    km = sum(f.geometry.length for f in traced.to_crs().tracks) / 1000
    typer.echo(f"{a.id}: {n} tracks ({km:.2f} km) from {len(chips)} scene(s) -> {out}")


def register(app: typer.Typer) -> None:
    from monitor.cli.aoi_cmd import aoi_app

    aoi_app.command("trace")(trace_cmd)
