"""``monitor detect SCENE --aoi ID|FILE [--json] [--geojson OUT] [--gsd M]``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect_cmd(
        scene: str = typer.Argument(..., help="A GeoTIFF/COG path or a STAC item JSON."),
        aoi: str = typer.Option(..., "--aoi", help="A bundled AOI id or an AOI file."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
        geojson: Optional[Path] = typer.Option(None, "--geojson", help="Write the detections as GeoJSON here."),
        gsd: Optional[float] = typer.Option(None, "--gsd", help="Read the chip at this pixel size (metres)."),
        sensor: Optional[str] = typer.Option(None, "--sensor", help="Override the sensor kind: optical or sar."),
        trace: bool = typer.Option(False, "--trace", help="Rail yards: trace the tracks in the scene "
                                   "(monitor.trace) and count along them instead of the AOI's lines; "
                                   "done anyway when the AOI has no track lines."),
    ):
        """Detect railcars or vessels in one scene's window of an AOI."""
        from monitor.aoi import load_aoi
        from monitor.cli import fail
        from monitor.detect import detect, detection_summary, detections_geojson, json_ready
        from monitor.errors import InputError
        from monitor.imagery import read_chip
        from monitor.scenes import open_scene

        try:
            a = load_aoi(aoi)
            s = open_scene(scene, sensor=sensor)
            chip = read_chip(s, a, gsd_m=gsd)
            results = detect(chip, trace=True if trace else None)
        except InputError as e:
            raise fail(e)
        summary = detection_summary(chip, results)
        if geojson is not None:
            fc = detections_geojson(chip, results)
            try:
                geojson.write_text(json.dumps(fc), encoding="utf-8")
            except OSError as e:
                raise fail(InputError(geojson, f"cannot write GeoJSON ({e.strerror or e})"))
        if json_out:
            typer.echo(json.dumps(json_ready(summary)))
            return
        counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items()) or "nothing"
        typer.echo(f"{summary['scene']} @ {summary['aoi']}: {counts} "
                   f"(coverage {summary['coverage']:.0%}, {summary['gsd_m']:.2f} m, "
                   f"{summary['sensor']}, acquired {summary['acquired'] or 'unknown'})")
