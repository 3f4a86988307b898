"""``monitor run INPUT... [--aoi ID...] [--store PATH] [--workers N] [--scheduler ADDR] [--json]``."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

from monitor.errors import InputError


def run_cmd(
    inputs: List[str] = typer.Argument(..., help="Scene files, folders or STAC JSON files."),
    aoi: Optional[List[str]] = typer.Option(None, "--aoi", help="AOI id or file (repeatable; default all bundled)."),
    store: Optional[str] = typer.Option(None, "--store", help="Store file (default $MONITOR_STORE or ./monitor.db)."),
    workers: int = typer.Option(0, "--workers", help="Local worker processes (default: the CPUs available)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                            help="Dask scheduler address, or 'local' for a local Dask cluster."),
    gsd: Optional[float] = typer.Option(None, "--gsd", help="Read chips at this ground sample distance (m)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
):
    """Process the new scenes of INPUT into the store, then score and report new alerts.

    Exit 0 when every scene was processed or skipped, 2 when any failed
    (each failure is recorded in the store with its reason).
    """
    from monitor.batch import default_workers, run_batch
    from monitor.cli import fail

    n_workers = workers or default_workers()
    bar = None
    if not json_out and sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), transient=True)
        task_id = None

        def progress_cb(done, total, out):
            nonlocal task_id
            if task_id is None:
                task_id = bar.add_task("scenes x AOIs", total=total)
            bar.update(task_id, completed=done, description=f"{out.aoi_id}")
    elif not json_out:
        def progress_cb(done, total, out):
            state = "ok" if out.ok else f"FAILED {out.error}"
            typer.echo(f"[{done}/{total}] {out.scene_id} {out.aoi_id}: {state}", err=True)
    else:
        progress_cb = None

    opts = {"read": {"gsd_m": gsd}} if gsd else {}
    try:
        if bar is not None:
            with bar:
                s = run_batch(inputs, aois=aoi, store=store, workers=n_workers, scheduler=scheduler,
                              options=opts, progress=progress_cb)
        else:
            s = run_batch(inputs, aois=aoi, store=store, workers=n_workers, scheduler=scheduler,
                          options=opts, progress=progress_cb)
    except InputError as e:
        raise fail(e)
    if json_out:
        typer.echo(json.dumps(s.to_dict(), default=str))
    else:
        for f in s.failures:
            typer.echo(f"error: {f['reason']}", err=True)
        typer.echo(f"{s.processed} processed, {s.skipped} skipped, {s.failed} failed, "
                   f"{len(s.alerts)} new alerts ({s.wall_s:.1f} s)")
        for a in s.alerts:
            typer.echo(f"  ALERT {a.get('message', a) if isinstance(a, dict) else a}")
    if s.failed:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
