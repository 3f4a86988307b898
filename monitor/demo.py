"""The first ten minutes: the whole tool on synthetic imagery of the bundled AOIs.

:func:`run_demo` writes a multi-year synthetic archive for Tumangang, Najin
and Dunay following the default scenario (normal traffic 2018-2019, the
border shut 2020 to autumn 2022, the surge to ~73 railcars after the
September 2023 summit, ships shuttling Najin <-> Dunay), runs the batch
into a store, raises the alerts, and writes a Markdown report: the alerts
with each scene's true count, counted against truth per AOI, series plots
with the baseline band and the truth, and quicklooks of the alert scenes
(stored detections outlined and numbered, truth dashed). Re-running reuses
the archive and skips what is done.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Callable, Sequence

#: AOIs of the demo, with the ground sample distance (m) and mean revisit (days).
#: Tumangang at 1.2 m (cars ~2.6 px wide): measured on Tumangang alone
#: (2018-01..2024-09, 54 scenes, shared 2-core machine) 1.2 m took 125 s with a
#: median |count error| of 8.0 cars, 1.0 m 140 s and 8.5, 0.8 m 322 s and 6.0:
#: finer pixels cost more than they gained. The ports at 3 m (PlanetScope-like)
#: cost ~0.2 s of CPU a scene, so a monthly look everywhere: enough scenes
#: after August 2023 to see the surge and the ships.
DEMO_AOIS = {
    "tumangang": {"gsd_m": 1.2, "revisit_days": 30},
    "najin": {"gsd_m": 3.0, "revisit_days": 30},
    "dunay": {"gsd_m": 3.0, "revisit_days": 30},
}


def _parse_date(s) -> date:
    return s if isinstance(s, date) else date.fromisoformat(str(s))


def run_demo(out_dir: "str | Path" = "monitor-demo", *, start="2018-01-01", end="2024-09-30",
             aois: Sequence[str] | None = None, workers: int | None = None, seed: int = 0,
             echo: Callable[[str], None] = print, bar: bool | None = None) -> Path:
    """Generate, process, alert and report; returns the report's path.

    out_dir gets ``scenes/<aoi>/`` (COGs, STAC items, truth), ``monitor.db``
    (the store) and ``report/report.md`` with its PNGs. ``bar``: draw rich
    progress bars (default: when standard output is a terminal), else
    progress lines through ``echo`` every few seconds.
    """
    from monitor.alerts import stored_alerts
    from monitor.aoi import load_aoi
    from monitor.batch import default_workers, run_batch
    from monitor.store import Store
    from monitor.synth import generate_archive

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = list(aois or DEMO_AOIS)
    n_workers = workers or default_workers()
    t0 = time.perf_counter()
    for aid in ids:
        cfg = DEMO_AOIS.get(aid, {"gsd_m": 1.0, "revisit_days": 30})
        d = out / "scenes" / aid
        done = d / ".complete"
        if done.exists():
            echo(f"{aid}: archive already in {d}")
            continue
        echo(f"{aid}: writing a synthetic archive {start} .. {end} at {cfg['gsd_m']:g} m, "
             f"a scene every {cfg['revisit_days']:g} days on average")
        with _progress(echo, f"{aid} scenes", bar) as cb:
            paths = generate_archive(load_aoi(aid), _parse_date(start), _parse_date(end), d,
                                     gsd_m=cfg["gsd_m"], revisit_days=cfg["revisit_days"], seed=seed,
                                     workers=n_workers, dtype="uint8", progress=cb)
        done.write_text(f"{len(paths)} scenes\n")
    echo(f"archive ready ({time.perf_counter() - t0:.0f} s); processing")

    store = Store(out / "monitor.db")
    store.add_size_classes(aoi=ids)  # a store written before the size-class series had none
    with _progress(echo, "scene x AOI pairs", bar) as cb:
        summary = run_batch([out / "scenes"], aois=ids, store=store, workers=n_workers, progress=cb)
    echo(f"{summary.processed} scenes processed, {summary.skipped} skipped, {summary.failed} failed, "
         f"{len(summary.alerts)} new alerts")
    acc = accuracy(store, out / "scenes", ids)
    for a in stored_alerts(store, aoi=ids):
        echo(f"ALERT {a.message}{_alert_note(a, acc)}")
    for aid in ids:  # the story's ships, alerted or not
        line = large_ship_summary(store, aid, acc)
        if line:
            echo(f"SHIPS {line}")
    rep = write_report(store, out / "report", ids, scenes_dir=out / "scenes", acc=acc)
    echo(f"done in {time.perf_counter() - t0:.0f} s")
    return rep


@contextmanager
def _progress(echo, label: str, bar: bool | None):
    """A ``callback(done, total, *rest)``: a rich progress bar on a terminal,
    else a line through ``echo`` every 5 s and at the end."""
    if bar is None:
        bar = sys.stdout.isatty()
    if bar:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), transient=False) as prog:
            task = prog.add_task(label, total=None)

            def cb(done, total, *rest):
                prog.update(task, completed=done, total=total)

            yield cb
        return
    last = [0.0]

    def cb(done, total, *rest):
        now = time.perf_counter()
        if done == total or now - last[0] > 5:
            last[0] = now
            echo(f"  {done}/{total} {label}")

    yield cb


#: Ships at least this long (m) are the cargo ships of the story: those seen at
#: Rajin in 2023-2025 measured 100-135 m (shared/data/reference README); it is
#: also the lower bound of the generator's "large" size class and of the
#: vessel detector's ``large_gt100m`` class, stored as the observation class
#: :data:`LARGE_SHIP_CLASS` (:data:`monitor.store.SIZE_CLASS_SERIES`).
LARGE_SHIP_M = 100.0

#: The store's observation class of ships of at least :data:`LARGE_SHIP_M` m.
LARGE_SHIP_CLASS = "vessel_large"


def _min_vessel_length_m(scene_path: Path, min_length_m: float) -> float:
    """The vessel detector's length limit on this scene (metres): the larger
    of ``min_length_m`` and :data:`monitor.detect.vessels.OPTICAL_MIN_LENGTH_PX`
    pixels (0 px on radar), as :func:`monitor.detect.vessels.detect_vessels`
    applies it."""
    import rasterio

    from monitor.detect.vessels import OPTICAL_MIN_LENGTH_PX

    try:
        with rasterio.open(scene_path) as ds:
            gsd = float(abs(ds.transform.a))
            sar = any("vv" in (d or "").lower() or "vh" in (d or "").lower() for d in ds.descriptions)
    except Exception:  # an unreadable scene keeps the metre limit
        return float(min_length_m)
    return max(float(min_length_m), 0.0 if sar else OPTICAL_MIN_LENGTH_PX * gsd)


def truth_counts(scenes_dir: "str | Path", aoi_id: str, *, min_vessel_length_m: float | None = 15.0) -> "pd.DataFrame":
    """True counts of a synthetic archive (``scenes/<aoi>/truth_counts.csv``):
    columns ``scene_id``, ``acquired`` (UTC), ``class``, ``truth``; empty when
    the archive has no truth file.

    ``vessel`` truth counts only the ships the vessel detector claims to
    count: at least ``min_vessel_length_m`` metres long (its default
    ``min_length_m``) and at least 4 pixels of the scene (read from each
    scene's ``<scene>.truth.geojson`` outlines, ``length_m``). The archive's
    own count holds every rendered boat, 6 m skiffs included, which no
    detector at 3 m can resolve. ``None`` keeps the archive's count."""
    import pandas as pd

    d = Path(scenes_dir) / aoi_id
    f = d / "truth_counts.csv"
    if not f.exists():
        return pd.DataFrame(columns=["scene_id", "acquired", "class", "truth"])
    t = pd.read_csv(f)
    out = pd.DataFrame({"scene_id": t["name"].astype(str), "acquired": pd.to_datetime(t["date"], utc=True),
                        "class": t["class"], "truth": t["count"].astype(int)})
    if min_vessel_length_m is not None:
        for i in out.index[out["class"] == "vessel"]:
            tif = d / f"{out.at[i, 'scene_id']}.tif"
            g = truth_objects(tif)
            if g is None or "length_m" not in g:
                continue
            lim = _min_vessel_length_m(tif, min_vessel_length_m)
            v = g[g["class"] == "vessel"] if "class" in g else g
            out.at[i, "truth"] = int((v["length_m"].astype(float) >= lim).sum())
    return out


def truth_objects(scene_path: "str | Path"):
    """The truth outlines of a synthetic scene (``<scene>.truth.geojson`` beside
    it) as a GeoDataFrame in EPSG:4326 with ``class`` and ``length_m``; None
    when the scene has no truth file."""
    import geopandas as gpd

    f = Path(scene_path).with_suffix(".truth.geojson")
    if not f.exists():
        return None
    g = gpd.read_file(f)
    return g.set_crs("EPSG:4326") if g.crs is None else g


def accuracy(store, scenes_dir: "str | Path", aois: Sequence[str], *, min_coverage: float = 0.6) -> "pd.DataFrame":
    """Counted against true counts, one row per scene x AOI of a synthetic archive.

    Columns: ``aoi_id``, ``scene_id``, ``acquired``, ``class``, ``coverage``,
    ``counted``, ``truth``, ``error`` (counted - truth), ``scored`` (coverage
    at least ``min_coverage``: the scenes the baseline uses and may alert on;
    the count of a partly seen scene covers only what was seen, so its
    error is not a detector error). Ports also get ``counted_large`` and
    ``truth_large``: ships of at least :data:`LARGE_SHIP_M` metres (the
    stored :data:`LARGE_SHIP_CLASS` observation, else the stored
    detections that long), and, when the store holds that class, its own
    rows (class :data:`LARGE_SHIP_CLASS`, truth: the scene's true ships
    that long).
    """
    import pandas as pd

    rows = []
    scenes = store.scenes().set_index("id")
    for aid in aois:
        obs = store.observations(aoi=aid)
        tr = truth_counts(scenes_dir, aid)
        if obs.empty or tr.empty:
            continue
        m = obs.merge(tr[["scene_id", "class", "truth"]], on=["scene_id", "class"], how="inner").sort_values("acquired")
        if m.empty:
            continue
        df = pd.DataFrame({"aoi_id": aid, "scene_id": m["scene_id"], "acquired": m["acquired"], "class": m["class"],
                           "coverage": m["coverage"].astype(float), "counted": m["count"].astype(float),
                           "truth": m["truth"].astype(int)})
        df["error"] = df["counted"] - df["truth"]
        df["scored"] = df["coverage"] >= min_coverage
        if (df["class"] == "vessel").any():
            large = obs[obs["class"] == LARGE_SHIP_CLASS]
            if len(large):
                big = large.set_index("scene_id")["count"]
            else:
                det = store.detections(aoi=aid, cls="vessel")
                big = det[det["length_m"] >= LARGE_SHIP_M].groupby("scene_id").size()
            df["counted_large"] = df["scene_id"].map(big).fillna(0).astype(int)
            tl = {}
            for sid in df["scene_id"]:
                g = truth_objects(scenes.loc[sid, "path"]) if sid in scenes.index and scenes.loc[sid, "path"] else None
                tl[sid] = int((g["length_m"] >= LARGE_SHIP_M).sum()) if g is not None and "length_m" in g else 0
            df["truth_large"] = df["scene_id"].map(tl).astype(int)
            v = df[df["class"] == "vessel"]
            lg = large[large["scene_id"].isin(set(v["scene_id"]))].drop_duplicates("scene_id")
            if len(lg):
                ref = v.drop_duplicates("scene_id").set_index("scene_id")
                extra = pd.DataFrame({"aoi_id": aid, "scene_id": lg["scene_id"].to_numpy(),
                                      "acquired": lg["acquired"].to_numpy(), "class": LARGE_SHIP_CLASS,
                                      "coverage": lg["coverage"].astype(float).to_numpy(),
                                      "counted": lg["count"].astype(float).to_numpy(),
                                      "truth": ref.loc[lg["scene_id"], "truth_large"].astype(int).to_numpy()})
                extra["error"] = extra["counted"] - extra["truth"]
                extra["scored"] = extra["coverage"] >= min_coverage
                extra["counted_large"] = extra["counted"].astype(int)
                extra["truth_large"] = extra["truth"]
                df = pd.concat([df, extra], ignore_index=True)
        rows.append(df)
    if not rows:
        return pd.DataFrame(columns=["aoi_id", "scene_id", "acquired", "class", "coverage", "counted", "truth",
                                     "error", "scored"])
    return pd.concat(rows, ignore_index=True)  # in the order of ``aois``, each by class and time


def accuracy_summary(acc: "pd.DataFrame") -> "pd.DataFrame":
    """Per AOI and class, over the scored scenes of :func:`accuracy`: scenes,
    scored, truth and counted totals, median absolute error, mean error
    (bias), the share of scenes counted within 20 % (or 2 objects) of truth
    and the share counted exactly (what tells on a class of 0-2 objects a
    scene, such as the big ships)."""
    import pandas as pd

    out = []
    for (aid, cls), g in acc.groupby(["aoi_id", "class"], sort=False):
        v = g[g["scored"]]
        e = v["error"]
        ok = (e.abs() <= (0.2 * v["truth"]).clip(lower=2))
        out.append({"aoi_id": aid, "class": cls, "scenes": len(g), "scored": len(v), "truth": int(v["truth"].sum()),
                    "counted": int(v["counted"].sum()), "median_abs_error": float(e.abs().median()) if len(v) else float("nan"),
                    "mean_error": float(e.mean()) if len(v) else float("nan"),
                    "within_20pct": float(ok.mean()) if len(v) else float("nan"),
                    "exact": float((e == 0).mean()) if len(v) else float("nan")})
    return pd.DataFrame(out)


def stored_result(store, scene_id: str, aoi, crs):
    """A scene's stored detections as a :class:`monitor.detect.DetectionResult`
    with geometries in ``crs`` (for a quicklook that shows exactly what was
    counted, without running the detector again)."""
    from monitor.detect import Detection, DetectionResult

    obs = store.observations(aoi=aoi.id)
    obs = obs[obs["scene_id"] == scene_id]
    det = store.detections(aoi=aoi.id, scene=scene_id)
    det = det.to_crs(crs) if len(det) else det
    results = []
    for _, o in obs.iterrows():
        d = det[det["class"] == o["class"]]
        results.append(DetectionResult(
            counts={o["class"]: int(o["count"])}, intervals={o["class"]: (float(o["count_lo"]), float(o["count_hi"]))},
            coverage=float(o["coverage"]),
            detections=[Detection(geometry=r.geometry, cls=r["class"], score=float(r["score"]), length_m=float(r["length_m"]),
                                  width_m=float(r["width_m"])) for _, r in d.iterrows()],
            crs=crs, detector=str(o["detector"]), version=str(o["version"])))
    return results


def scene_quicklook(store, scene_id: str, aoi_id: str, out: "str | Path", *, title: str | None = None) -> Path:
    """Quicklook PNG of one stored scene: its AOI chip, the stored detections
    outlined and numbered, and (synthetic scenes) the truth outlines."""
    from monitor.aoi import load_aoi
    from monitor.imagery import read_chip
    from monitor.plots import quicklook
    from monitor.scenes import open_scene

    scenes = store.scenes().set_index("id")
    a = load_aoi(aoi_id)
    path = scenes.loc[scene_id, "path"]
    chip = read_chip(open_scene(path), a)
    res = stored_result(store, scene_id, a, chip.crs)
    tr = truth_objects(path)
    truth = list(tr.to_crs(chip.crs).geometry) if tr is not None and len(tr) else None
    return quicklook(chip, res, out, title=title, truth=truth)


def _alert_note(a, acc) -> str:
    """' (synthetic truth: N ...)' for an alert of a synthetic scene."""
    if acc is None or acc.empty or not a.scene_id:
        return ""
    r = acc[(acc["scene_id"] == a.scene_id) & (acc["aoi_id"] == a.aoi_id) & (acc["class"] == a.cls)]
    if r.empty:
        return ""
    t = int(r.iloc[0]["truth"])
    return f" [synthetic truth: {t}, counted {a.count - t:+.0f}]"


def rise_evidence(obs) -> "pd.Series | None":
    """The scored row of ``obs`` (one series: ``acquired``, ``count``,
    ``coverage``) with the least sustained-rise p of
    :func:`monitor.baseline.score` (defaults, as the alerts use): its
    ``rise_p``, ``rise_n``, ``rise_count``, ``rise_expected``,
    ``rise_start``, ``acquired``; None when no row could be tested or
    none rose at all (p = 1 everywhere)."""
    from monitor.baseline import score

    if obs is None or len(obs) == 0:
        return None
    sc = score(obs)
    sc = sc[sc["rise_p"] < 1]
    return None if sc.empty else sc.loc[sc["rise_p"].idxmin()]


def _rise_alpha() -> float:
    import inspect

    from monitor.baseline import score

    return float(inspect.signature(score).parameters["rise_alpha"].default)


def _evidence_text(r) -> str:
    import pandas as pd

    return (f"p = {r['rise_p']:.1g}: {r['rise_count']:.0f} ships in the {int(r['rise_n'])} scenes "
            f"{pd.Timestamp(r['rise_start']):%Y-%m-%d}..{pd.Timestamp(r['acquired']):%Y-%m-%d} where "
            f"{r['rise_expected']:.1f} were expected")


def _truth_large(mine):
    """The true big-ship series of a port's vessel rows of :func:`accuracy` (or None)."""
    if mine is None or not len(mine) or "truth_large" not in mine or mine["truth_large"].isna().all():
        return None
    return mine[["aoi_id", "scene_id", "acquired", "coverage", "truth_large"]].rename(
        columns={"truth_large": "count"}).assign(**{"class": LARGE_SHIP_CLASS})


def large_ship_summary(store, aoi_id: str, acc=None) -> str | None:
    """One line on a port's ships of at least :data:`LARGE_SHIP_M` m: their
    alerts, or the strongest sustained-rise evidence short of one, and the
    same test on the synthetic truth (when ``acc`` of :func:`accuracy`
    holds it). None when the store has no such series for the AOI."""
    import pandas as pd

    from monitor.alerts import aoi_name, stored_alerts

    big = store.observations(aoi=aoi_id, cls=LARGE_SHIP_CLASS)
    if big.empty:
        return None
    alpha = _rise_alpha()
    al = [a for a in stored_alerts(store, aoi=aoi_id, cls=LARGE_SHIP_CLASS)]
    txt = f"{aoi_name(aoi_id)}, ships of at least {LARGE_SHIP_M:.0f} m: "
    if al:
        txt += f"{len(al)} alert{'s' if len(al) != 1 else ''} (" + ", ".join(
            f"{pd.Timestamp(a.acquired):%Y-%m-%d} {a.kind}" for a in al) + ")"
    else:
        r = rise_evidence(big)
        txt += "no alert" + (f" (strongest rise {_evidence_text(r)}; an alert needs p < {alpha:g})" if r is not None else "")
    mine = acc[(acc["aoi_id"] == aoi_id) & (acc["class"] == "vessel")] if acc is not None and len(acc) else None
    r = rise_evidence(_truth_large(mine))
    if r is not None:
        txt += f"; on the synthetic truth: {_evidence_text(r)} ({'an alert' if r['rise_p'] < alpha else 'no alert'})"
    return txt


def _large_ship_section(store, aid: str, obs, mine, large_alerts, vessel_alerts, out: Path) -> list[str]:
    """Report lines about the ships of at least :data:`LARGE_SHIP_M` m at one
    port: their stored series (plot), its alerts or the strongest
    sustained-rise evidence short of one, and (synthetic archives) the same
    test on their true counts and how the counted ones differ."""
    import pandas as pd

    from monitor.plots import plot_store

    bt = None
    if mine is not None and "truth_large" in mine and len(mine):
        bt = mine[["acquired", "truth_large"]].rename(columns={"truth_large": "count"})
    png = plot_store(store, aid, out / f"{aid}_large_ships.png", cls=LARGE_SHIP_CLASS, truth=bt)
    lines = [f"![{aid} ships of at least {LARGE_SHIP_M:.0f} m]({png.name})", "",
             f"Ships of at least {LARGE_SHIP_M:.0f} m (class `{LARGE_SHIP_CLASS}`, the detector's size class: the "
             "cargo ships of the story measured 100-135 m, fishing boats and coasters stay below) have their own "
             f"series, baseline and alerts (`monitor plot --aoi {aid} --class {LARGE_SHIP_CLASS}`)."]
    alpha = _rise_alpha()
    if large_alerts:
        when = ", ".join(f"{pd.Timestamp(a.acquired):%Y-%m-%d} ({a.kind})" for a in large_alerts)
        lines[-1] += f" {len(large_alerts)} alert{'s' if len(large_alerts) != 1 else ''} on them: {when}."
    else:
        r = rise_evidence(obs[obs["class"] == LARGE_SHIP_CLASS])
        lines[-1] += (" No alert on them" + (f": the strongest evidence of a sustained rise is {_evidence_text(r)}, and "
                                            f"an alert needs p < {alpha:g} (adjusted for the windows and references "
                                            "tried)" if r is not None else "") + ".")
    if bt is not None:
        r = rise_evidence(_truth_large(mine))
        v = mine[mine["scored"]]
        over = v[v["counted_large"] > v["truth_large"]]
        under = v[v["counted_large"] < v["truth_large"]]
        lines[-1] += (f" Against the synthetic truth, over the {len(v)} scored scenes: {int(v['counted_large'].sum())} "
                      f"counted, {int(v['truth_large'].sum())} true; {len(over)} scenes with more counted than true "
                      f"({int((over['counted_large'] - over['truth_large']).sum())} false ships: before the cargo ships "
                      f"come they raise the baseline the rise is measured against), {len(under)} with fewer.")
        if r is not None:
            lines[-1] += (f" The same test on the true counts: {_evidence_text(r)}"
                          + (" (an alert)." if r["rise_p"] < alpha else " (no alert)."))
    n = len(vessel_alerts)
    when = ", ".join(f"{pd.Timestamp(a.acquired):%Y-%m-%d}" for a in vessel_alerts)
    lines += ["", (f"{n} alert{'s' if n != 1 else ''} on all vessels ({when})." if n else "No alert on all vessels.")
              + " The cargo ships add one or two hulls to a scene, within the scene-to-scene spread of the small "
              "craft, so the all-vessel series hardly shows them.", ""]
    return lines


def _md_table(df, cols, fmt=None) -> list[str]:
    fmt = fmt or {}
    lines = ["| " + " | ".join(cols.values()) + " |", "|" + "|".join("---:" if k not in ("name", "aoi_id", "class", "date", "scene_id") else "---" for k in cols) + "|"]
    for _, r in df.iterrows():
        cells = []
        for k in cols:
            v = r[k]
            f = fmt.get(k)
            cells.append(f(v) if f else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(store, out_dir: "str | Path", aois: Sequence[str], *, scenes_dir: "str | Path | None" = None,
                 max_quicklooks: int = 3, acc=None) -> Path:
    """Write ``report.md``: the alerts, counted against true counts (when
    ``scenes_dir`` holds a synthetic archive's truth), and per AOI the series
    plot (baseline band, low-coverage points, alerts, truth) and up to
    ``max_quicklooks`` quicklooks: the first alert scene then the biggest
    ones (the busiest scene when there is no alert); ports show at most one
    alert scene, then the scene with the most ships of at least
    :data:`LARGE_SHIP_M` m and the latest scored scene, beside the series
    of those ships. ``acc``: a frame from :func:`accuracy` already
    computed. Returns the report's path."""
    import pandas as pd

    from monitor.alerts import aoi_name, plural, stored_alerts
    from monitor.plots import plot_store
    from monitor.store import main_class

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if acc is None and scenes_dir is not None:
        acc = accuracy(store, scenes_dir, aois)
    has_truth = acc is not None and not acc.empty
    lines = ["# Border traffic monitor: demo report", "",
             "Synthetic imagery of the bundled AOIs following the default scenario "
             "(`monitor/synth/scenarios/default.json`, keyed to public reporting). Every count, baseline and alert "
             "below comes from the detectors and the store, not from the generator; the generator's truth is shown "
             "beside them (green) so you can see how far to trust each number.", ""]
    alerts = stored_alerts(store, aoi=list(aois))
    lines += ["## Alerts", ""]
    lines += [f"- {a.message}{_alert_note(a, acc)}" for a in alerts] or ["- none"]
    ships = [x for x in (large_ship_summary(store, aid, acc) for aid in aois) if x]
    if ships:
        lines += ["", f"The story's ships (the `{LARGE_SHIP_CLASS}` series, alerted or not):", ""]
        lines += [f"- {x}" for x in ships]
    lines.append("")
    if has_truth:
        summ = accuracy_summary(acc)
        lines += ["## Counted vs truth", "",
                  "Scored scenes only (at least 60 % of the tracks or water seen: the scenes the baseline uses). "
                  "'Within 20 %': counted within 20 % of truth or 2 objects, whichever is more; 'exact': counted "
                  f"exactly (the measure for `{LARGE_SHIP_CLASS}`, ships of at least {LARGE_SHIP_M:.0f} m, 0-2 a scene).", ""]
        summ["name"] = [aoi_name(x) for x in summ["aoi_id"]]
        lines += _md_table(summ, {"name": "AOI", "class": "class", "scenes": "scenes", "scored": "scored",
                                  "truth": "truth total", "counted": "counted total",
                                  "median_abs_error": "median abs. error", "mean_error": "mean error (bias)",
                                  "within_20pct": "within 20 %", "exact": "exact"},
                           {"median_abs_error": lambda v: f"{v:.1f}", "mean_error": lambda v: f"{v:+.1f}",
                            "within_20pct": lambda v: f"{v:.0%}", "exact": lambda v: f"{v:.0%}"})
        lines.append("")
    for aid in aois:
        obs = store.observations(aoi=aid)
        if obs.empty:
            continue
        cls = main_class(obs)
        lines += [f"## {aoi_name(aid)}", ""]
        mine_all = acc[acc["aoi_id"] == aid] if has_truth else None
        mine = mine_all[mine_all["class"] == cls] if mine_all is not None else None
        truth = mine[["acquired", "truth"]].rename(columns={"truth": "count"}) if mine is not None and len(mine) else None
        png = plot_store(store, aid, out / f"{aid}_series.png", cls=cls, truth=truth)
        lines += [f"![{aid} series]({png.name})", "",
                  "Blue: the baseline (median of the prior five years, seasonal) and its band (3.5 robust spreads); "
                  "hollow grey: scenes too little seen to be scored; red: alerts"
                  + ("; green: the synthetic truth." if truth is not None else "."), ""]
        my_alerts = [a for a in alerts if a.aoi_id == aid and a.scene_id]
        if cls == "vessel" and (obs["class"] == LARGE_SHIP_CLASS).any():
            lines += _large_ship_section(store, aid, obs, mine, [a for a in my_alerts if a.cls == LARGE_SHIP_CLASS],
                                         [a for a in my_alerts if a.cls == "vessel"], out)
        # the first alert (the onset), then the biggest ones; at ports the big ships' first
        by_time = sorted(my_alerts, key=lambda a: (a.cls != LARGE_SHIP_CLASS, pd.Timestamp(a.acquired)))
        first = by_time[:1]
        picks = first + sorted([a for a in my_alerts if a not in first], key=lambda a: -a.count)
        todo = [(a.scene_id, f"Alert scene {pd.Timestamp(a.acquired):%Y-%m-%d}"
                 + (" (the first alert)" if a in first and len(my_alerts) > 1 else "")
                 + (f": {a.message.split(': ', 1)[-1]}; this scene {a.count:.0f}" if a.kind == "rise" else
                    f": {a.count:.0f} {plural(a.cls)} counted") + _alert_note(a, acc)) for a in picks]
        if cls == "vessel" and mine is not None and "counted_large" in mine and mine["counted_large"].max() > 0:
            seen = mine[mine["scored"]]
            r = mine.sort_values(["counted_large", "acquired"]).iloc[-1]
            extra = [(r["scene_id"], f"Scene with the most ships of at least {LARGE_SHIP_M:.0f} m detected: "
                      f"{r['acquired']:%Y-%m-%d}, {int(r['counted_large'])} (truth {int(r['truth_large'])}), "
                      f"{int(r['counted'])} vessels in all (truth {int(r['truth'])})")]
            if len(seen):
                q = seen.iloc[-1]
                extra.append((q["scene_id"], f"The latest scored scene: {q['acquired']:%Y-%m-%d}, "
                              f"{int(q['counted_large'])} ship{'s' if int(q['counted_large']) != 1 else ''} of at "
                              f"least {LARGE_SHIP_M:.0f} m "
                              f"(truth {int(q['truth_large'])}), {int(q['counted'])} vessels in all "
                              f"(truth {int(q['truth'])})"))
            # ports: at most one alert scene, then the ships
            todo = todo[:1] + [e for e in extra if e[0] not in {t[0] for t in todo[:1]}]
        elif not todo:
            best = obs[obs["class"] == cls].sort_values("count").iloc[-1]
            todo = [(best["scene_id"], f"Busiest scene: {best['acquired']:%Y-%m-%d}, {int(best['count'])} {cls}s")]
        todo = todo[:max_quicklooks]
        for sid, caption in todo:
            try:
                ql = scene_quicklook(store, sid, aid, out / f"{sid}.png")
                lines += [caption + ".", "", f"![{sid} quicklook]({ql.name})", ""]
            except Exception as e:  # the report must not fail on one picture
                lines += [f"(quicklook of {sid} failed: {e})", ""]
        if mine is not None and len(mine):
            cols = {"date": "date", "coverage": "seen", "counted": "counted", "truth": "truth", "error": "error"}
            if "truth_large" in mine and mine["truth_large"].notna().any():
                cols.update({"counted_large": f"counted >= {LARGE_SHIP_M:.0f} m", "truth_large": f"truth >= {LARGE_SHIP_M:.0f} m"})
            t = mine.assign(date=mine["acquired"].dt.strftime("%Y-%m-%d"))
            lines += ["<details><summary>Every scene: counted vs truth</summary>", ""]
            lines += _md_table(t, cols, {"coverage": lambda v: f"{v:.0%}", "counted": lambda v: f"{v:.0f}",
                                         "error": lambda v: f"{v:+.0f}"})
            lines += ["", "</details>", ""]
    p = out / "report.md"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p
