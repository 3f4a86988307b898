"""``monitor alerts [...]``, ``monitor alerts ack ID|--all``, ``monitor series import|show``.

``monitor alerts`` first scores the store's observations (new alerts are
stored once), then prints the stored alerts that match the filters; it
exits 1 when it printed any alert and 0 when none (shared/DESIGN.md).
"""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from monitor.errors import InputError

alerts_app = typer.Typer(help="Spike and record alerts from the store.", invoke_without_command=True)
series_app = typer.Typer(help="External series (e.g. monthly customs figures).", no_args_is_help=True)

_STORE_HELP = "Store file (default $MONITOR_STORE or ./monitor.db)."


def _open(path):
    from monitor.store import Store

    return Store(path)


@alerts_app.callback()
def alerts_cmd(
    ctx: typer.Context,
    aoi: Optional[List[str]] = typer.Option(None, "--aoi", help="Only this AOI id (repeatable)."),
    cls: Optional[List[str]] = typer.Option(None, "--class", help="Only this object class (repeatable)."),
    since: Optional[str] = typer.Option(None, "--since", help="Only observations from this date (UTC)."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
    new: bool = typer.Option(False, "--new", help="Only alerts not acknowledged yet."),
    webhook: Optional[str] = typer.Option(None, "--webhook", help="POST the printed, undelivered alerts here."),
    window_years: float = typer.Option(5.0, "--window-years", help="Baseline window in years."),
    store: Optional[str] = typer.Option(None, "--store", help=_STORE_HELP),
):
    """Score the store and print its alerts in plain words (exit 1 when any, 0 when none)."""
    from monitor.cli import fail

    ctx.obj = {"store": store}
    if ctx.invoked_subcommand is not None:
        return
    if fmt not in ("table", "json"):
        raise fail(InputError("--format", f"unknown format {fmt!r}; use table or json"))
    from monitor.alerts import deliver_webhook, raise_alerts, stored_alerts

    try:
        if since is not None:
            import pandas as pd

            try:
                pd.Timestamp(since)
            except (ValueError, TypeError):
                raise InputError(since, "not a date (use YYYY-MM-DD)") from None
        with _open(store) as st:
            raise_alerts(st, aoi=aoi, cls=cls, window_years=window_years)
            shown = stored_alerts(st, aoi=aoi, cls=cls, since=since, new_only=new)
            if webhook and shown:
                deliver_webhook([a for a in shown if a.delivered is None], webhook, store=st)
                shown = [a for a in stored_alerts(st, aoi=aoi, cls=cls, since=since, new_only=new)
                         if a.id in {b.id for b in shown}]
    except InputError as e:
        raise fail(e)
    if fmt == "json":
        typer.echo(json.dumps([a.to_dict() for a in shown], indent=2))
    elif shown:
        for a in shown:
            mark = "*" if a.state == "new" else " "
            typer.echo(f"{mark}#{a.id:<5} {a.kind:<13} {a.message}")
    else:
        typer.echo("no alerts")
    raise typer.Exit(1 if shown else 0)


@alerts_app.command("ack")
def ack_cmd(
    ctx: typer.Context,
    ids: Optional[List[int]] = typer.Argument(None, help="Alert ids to acknowledge."),
    all_: bool = typer.Option(False, "--all", help="Acknowledge every new alert."),
    store: Optional[str] = typer.Option(None, "--store", help=_STORE_HELP),
):
    """Mark alerts acknowledged (they no longer show with --new)."""
    from monitor.cli import fail

    store = store or (ctx.obj or {}).get("store")
    if not ids and not all_:
        raise fail(InputError("alerts ack", "give alert ids or --all"))
    try:
        with _open(store) as st:
            if ids:
                known = st.alert_ids()
                missing = [i for i in ids if i not in known]
                if missing:
                    raise InputError(f"alert {missing[0]}", f"no such alert in {st.path}")
            n = st.acknowledge(None if all_ else ids)
    except InputError as e:
        raise fail(e)
    typer.echo(f"acknowledged {n} alert{'s' if n != 1 else ''}")


@series_app.command("import")
def series_import(
    csv: str = typer.Argument(..., help="CSV of time,value (months like 2023-04 or 2023-01..03)."),
    name: str = typer.Option(..., "--name", help="Series name."),
    unit: str = typer.Option("", "--unit", help="Unit of the values, e.g. 'USD m'."),
    store: Optional[str] = typer.Option(None, "--store", help=_STORE_HELP),
):
    """Clean and import a monthly series into the store."""
    from monitor.cli import fail
    from monitor.series import clean_monthly

    try:
        df = clean_monthly(csv)
        with _open(store) as st:
            n = st.write_series(name, df, unit=unit or None)
    except InputError as e:
        raise fail(e)
    derived = int((df["status"] == "derived").sum())
    typer.echo(f"{name}: {n} months imported ({derived} derived), "
               f"{df['time'].min():%Y-%m} to {df['time'].max():%Y-%m}")


@series_app.command("show")
def series_show(
    name: str = typer.Argument(..., help="Series name."),
    json_out: bool = typer.Option(False, "--json", help="Print the growth table as JSON."),
    store: Optional[str] = typer.Option(None, "--store", help=_STORE_HELP),
):
    """Print month-on-month and year-on-year growth, YTD totals and notable months."""
    from monitor.cli import fail
    from monitor.series import growth, report, statements

    try:
        with _open(store) as st:
            df = st.series(name)
    except InputError as e:
        raise fail(e)
    unit = df["unit"].dropna().iloc[0] if df["unit"].notna().any() else None
    if json_out:
        g = growth(df)
        g["time"] = g["time"].dt.strftime("%Y-%m")
        typer.echo(json.dumps({"name": name, "unit": unit,
                               "months": json.loads(g.to_json(orient="records")),
                               "statements": statements(df, name=name, unit=unit)}, indent=2))
        return
    typer.echo(report(df, name=name, unit=unit))


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(series_app, name="series")
