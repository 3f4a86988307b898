"""Pictures analysts trust a number by: time series and quicklooks (PNG).

- :func:`plot_series`: counts over time for one AOI and class, with each
  count's interval as a whisker, the
  baseline band, low-coverage points marked, alerts highlighted, and
  optionally an external series (e.g. China's exports) on a second axis.
- :func:`quicklook`: a chip with each detection outlined and numbered and
  the count in the title.

Both write a PNG with matplotlib's Agg backend (no screen needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def chip_rgb(chip, *, percentiles=(2, 98), invalid: str = "dim") -> np.ndarray:
    """A display image (h, w, 3) float in 0..1 from a chip's bands.

    Optical: red/green/blue when present, else the gray band; SAR: the
    first polarisation in dB. Stretched linearly between the given
    percentiles of the valid pixels of all three bands together. Invalid pixels (nodata, cloud mask,
    saturated snow or cloud) are shown dimmed with a violet tint
    (``invalid="dim"``) so the scene stays readable, or black (``"black"``).
    """
    valid = chip.valid
    if chip.sensor == "sar":
        b = chip.bands[0]
        img = 10 * np.log10(np.maximum(b, 1e-6))
        layers = [img, img, img]
    elif chip.has("red", "green", "blue"):
        layers = [chip.band("red"), chip.band("green"), chip.band("blue")]
    else:
        g = chip.gray()
        layers = [g, g, g]
    out = np.zeros(valid.shape + (3,), dtype=np.float32)
    # one stretch for the three bands, so colours keep their balance (a
    # stretch per band turns a uniform field into colour noise)
    v = np.concatenate([(layer[valid] if valid.any() else layer.ravel()) for layer in layers])
    v = v[np.isfinite(v)]
    lo, hi = np.percentile(v, percentiles) if v.size else (0.0, 1.0)
    for i, layer in enumerate(layers):
        out[..., i] = np.clip((layer - lo) / max(hi - lo, 1e-6), 0, 1)
    if invalid == "black":
        out[~valid] = 0
    else:
        out[~valid] = out[~valid] * 0.35 + np.array([0.30, 0.12, 0.35], np.float32)
    return out


#: colours of the quicklook outlines
_COLOURS = {"railcar": "#ffea00", "vessel": "#ff1744"}
_TRUTH_COLOUR = "#00e676"


def densest_window(points: np.ndarray, width: float, height: float, bounds) -> tuple[float, float, float, float]:
    """The ``width`` x ``height`` window (same units as ``points``, (n, 2) x/y)
    holding the most points, kept inside ``bounds`` = (xmin, ymin, xmax, ymax);
    centred on the mean of the points it holds. Returns (xmin, ymin, xmax, ymax)."""
    x0, y0, x1, y1 = bounds
    width, height = min(width, x1 - x0), min(height, y1 - y0)
    if len(points):
        inside = ((np.abs(points[:, None, 0] - points[None, :, 0]) <= width / 2)
                  & (np.abs(points[:, None, 1] - points[None, :, 1]) <= height / 2))
        best = int(np.argmax(inside.sum(axis=1)))
        cx, cy = points[inside[best]].mean(axis=0)
    else:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    cx = float(np.clip(cx, x0 + width / 2, x1 - width / 2))
    cy = float(np.clip(cy, y0 + height / 2, y1 - height / 2))
    return cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2


def _geoms(g):
    return list(getattr(g, "geoms", [g]))


def _draw_panel(ax, img, extent, la, dets, truth, *, numbers: bool, fontsize: float, lw: float):
    from matplotlib.patches import Polygon as MplPolygon

    ax.imshow(img, extent=extent, interpolation="nearest")
    for f in la.tracks + la.bridges:
        x, y = f.geometry.xy
        ax.plot(x, y, color="#00e5ff", lw=0.5, alpha=0.45)
    for f in la.water:
        for g in _geoms(f.geometry):
            x, y = g.exterior.xy
            ax.plot(x, y, color="#2979ff", lw=0.7, alpha=0.6)
    x, y = la.boundary.exterior.xy
    ax.plot(x, y, color="white", lw=0.8, ls="--", alpha=0.7)
    for g in truth:  # wide and under the detections: a green rim shows around a correct detection
        for q in _geoms(g):
            ax.add_patch(MplPolygon(np.asarray(q.exterior.coords), closed=True, fill=False, ec=_TRUTH_COLOUR,
                                    lw=lw * 2.2, alpha=0.8, ls=(0, (2, 1))))
    for k, d in dets:
        for q in _geoms(d.geometry):
            ax.add_patch(MplPolygon(np.asarray(q.exterior.coords), closed=True, fill=False,
                                    ec=_COLOURS.get(d.cls, "#ff9100"), lw=lw))
        if numbers:  # just above the object, so small outlines stay visible
            c = d.geometry.centroid
            ax.annotate(str(k), (c.x, c.y), xytext=(0, fontsize * 0.6), textcoords="offset points", color="white",
                        fontsize=fontsize, ha="center", va="bottom", annotation_clip=True,
                        bbox=dict(boxstyle="square,pad=0.05", fc="black", ec="none", alpha=0.55))


def quicklook(chip, results, out: "str | Path", *, title: str | None = None, max_labels: int = 150,
              truth=None, zoom: bool | None = None, zoom_px: int = 360) -> Path:
    """Write a PNG of ``chip`` with every detection outlined and numbered.

    ``results`` is a list of :class:`monitor.detect.DetectionResult` whose
    geometries are in the chip's CRS. AOI tracks and water outlines are drawn
    thinly for context; invalid pixels (cloud, nodata, saturated) are dimmed.
    ``truth``: optional geometries in the chip CRS (known objects, e.g. a
    synthetic scene's truth) drawn as dashed green outlines.

    A chip wider or taller than 4 x ``zoom_px`` pixels (``zoom=None``: too big
    to show its pixels in one panel) gets a second panel: the window of ``zoom_px`` x ``zoom_px / 2`` pixels
    holding the most detections, at full resolution, outlined in the
    overview; numbers are the same in both panels (the overview numbers
    only up to ``max_labels`` detections). The title gives the count per
    class and the detector's coverage (share of tracks / water seen).
    Returns the PNG path.
    """
    plt = _plt()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img = chip_rgb(chip)
    h, w = img.shape[:2]
    t = chip.transform
    extent = (t.c, t.c + t.a * w, t.f + t.e * h, t.f)
    bounds = (min(extent[0], extent[1]), min(extent[2], extent[3]), max(extent[0], extent[1]), max(extent[2], extent[3]))
    la = chip.local_aoi
    truth = [g for g in (truth or []) if g is not None and not g.is_empty]
    counts: dict[str, int] = {}
    dets = []
    for r in results:
        for name, c in r.counts.items():
            counts[name] = counts.get(name, 0) + int(c)
        dets += list(r.detections)
    dets = list(enumerate(dets, start=1))
    if zoom is None:
        zoom = max(h, w) > zoom_px * 4
    gsd = abs(t.a)
    if zoom:
        pts = np.array([[d.geometry.centroid.x, d.geometry.centroid.y] for _, d in dets]).reshape(-1, 2)
        win = densest_window(pts, zoom_px * gsd, zoom_px * gsd / 2, bounds)
        fig_w = 14.0
        ov_h = fig_w * (bounds[3] - bounds[1]) / (bounds[2] - bounds[0])
        zh = fig_w * (win[3] - win[1]) / (win[2] - win[0])
        fig, (ax, az) = plt.subplots(2, 1, figsize=(fig_w, ov_h + zh + 1.6), dpi=110,
                                     gridspec_kw={"height_ratios": [max(ov_h, 1.0), max(zh, 1.0)]})
    else:
        scale = min(14.0, max(9.5, w / 80))
        fig, ax = plt.subplots(figsize=(scale, scale * h / max(w, 1) + 1.0), dpi=110)
        az, win = None, None
    _draw_panel(ax, img, extent, la, dets, truth, numbers=len(dets) <= max_labels,
                fontsize=4.5 if zoom else 5.5, lw=0.7 if zoom else 0.9)
    ax.set_xlim(bounds[0], bounds[2])
    ax.set_ylim(bounds[1], bounds[3])
    if az is not None:
        ax.add_patch(Rectangle((win[0], win[1]), win[2] - win[0], win[3] - win[1], fill=False, ec="#ff9100", lw=1.2))
        inside = [(k, d) for k, d in dets if win[0] <= d.geometry.centroid.x <= win[2]
                  and win[1] <= d.geometry.centroid.y <= win[3]]
        _draw_panel(az, img, extent, la, dets, truth, numbers=True, fontsize=6.5, lw=1.1)
        az.set_xlim(win[0], win[2])
        az.set_ylim(win[1], win[3])
        az.set_title(f"zoom (orange box): {len(inside)} of {len(dets)} detections, full resolution", fontsize=8)
        az.tick_params(labelsize=6)
        az.set_xlabel(f"easting (m, {chip.crs})", fontsize=7)
        az.set_ylabel("northing (m)", fontsize=7)
    what = ", ".join(f"{v} {n}{'s' if v != 1 else ''}" for n, v in counts.items()) or "nothing detected"
    when = getattr(chip.scene, "acquired", None)
    head = title or f"{chip.aoi.name}: {what}"
    sub = f"{when:%Y-%m-%d %H:%M} UTC, " if when else ""
    seen = "tracks" if chip.aoi.kind == "rail_yard" else "water"
    cov = results[0].coverage if results else chip.coverage
    ax.set_title(f"{head}\n{sub}{chip.gsd_m:.2f} m GSD, {cov:.0%} of the {seen} seen"
                 + (f", {len(truth)} objects in truth" if truth else ""), fontsize=10)
    ax.set_xlabel(f"easting (m, {chip.crs})", fontsize=7)
    ax.set_ylabel("northing (m)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.ticklabel_format(useOffset=False, style="plain")
    handles = [Line2D([], [], color=_COLOURS.get(c, "#ff9100"), lw=1.2, label=f"detected {c} (numbered)") for c in counts]
    if truth:
        handles.append(Line2D([], [], color=_TRUTH_COLOUR, lw=2.0, ls="--", label="truth (synthetic scene)"))
    handles.append(Rectangle((0, 0), 1, 1, fc=(0.45, 0.25, 0.5), ec="none", label="not valid (cloud, snow glare, nodata)"))
    ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.75)
    if az is not None:
        az.ticklabel_format(useOffset=False, style="plain")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def interval_bars(frame):
    """The count interval of each row of ``frame`` (columns ``count_lo`` and
    ``count_hi``, objects) as two float arrays ``(lo, hi)`` for whiskers, or
    ``None`` when the frame has no intervals or every one is a single value
    (the count itself). Missing bounds are NaN (no whisker)."""
    if "count_lo" not in frame or "count_hi" not in frame or not len(frame):
        return None
    import pandas as pd

    lo = pd.to_numeric(frame["count_lo"], errors="coerce").to_numpy(dtype=float)
    hi = pd.to_numeric(frame["count_hi"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if not ok.any() or not (hi[ok] > lo[ok]).any():
        return None
    return lo, hi


def plot_series(scored, out: "str | Path", *, title: str, unit: str = "count",
                external=None, external_label: str | None = None, alerts=None, truth=None,
                truth_label: str = "truth (synthetic scenes)",
                interval_label: str = "count interval (90%, true objects seen)") -> Path:
    """Write a PNG of a scored count series.

    scored: a DataFrame from :func:`monitor.baseline.score` for one AOI and
        class, with columns ``acquired``, ``count``, and where available
        ``baseline`` (the robust centre), ``lo``/``hi`` (the band),
        ``low_coverage`` (bool), ``alert`` (bool) and ``count_lo``/
        ``count_hi`` (the count interval of each scene, drawn as grey
        whiskers, :func:`interval_bars`; ``interval_label`` names it).
    external: optional DataFrame with ``time`` and ``value`` drawn on a
        second axis (e.g. monthly exports, US$ million).
    truth: optional DataFrame with ``acquired`` and ``count``: the true
        counts of the same scenes (known for synthetic data), drawn as a
        dashed green line so the detector's error is visible.
    """
    plt = _plt()
    import pandas as pd

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df = scored.sort_values("acquired")
    t = pd.to_datetime(df["acquired"], utc=True)
    fig, ax = plt.subplots(figsize=(11, 4.6), dpi=110)
    if "hi" in df and "lo" in df:
        ax.fill_between(t, df["lo"].astype(float), df["hi"].astype(float), color="#90caf9", alpha=0.45,
                        step="post", label="baseline band", lw=0)
    if "baseline" in df:
        ax.plot(t, df["baseline"].astype(float), color="#1565c0", lw=1.0, drawstyle="steps-post",
                label="baseline (median of prior years)")
    low = df["low_coverage"].astype(bool).to_numpy() if "low_coverage" in df else np.zeros(len(df), bool)
    bars = interval_bars(df)
    if bars is not None:
        lo, hi = bars
        ok = np.isfinite(lo) & np.isfinite(hi)
        ax.vlines(t[ok], lo[ok], hi[ok], color="#616161", lw=0.7, alpha=0.7, label=interval_label)
        for v in (lo, hi):
            ax.plot(t[ok], v[ok], "_", color="#616161", ms=4, mew=0.7, alpha=0.7)
    ax.plot(t[~low], df["count"][~low], "o-", color="#212121", ms=2.5, lw=0.6, label="observed")
    if low.any():
        ax.plot(t[low], df["count"][low], "o", mfc="none", mec="#9e9e9e", ms=4, label="low coverage (not scored)")
    if truth is not None and len(truth):
        tr = truth.sort_values("acquired")
        ax.plot(pd.to_datetime(tr["acquired"], utc=True), tr["count"], "s--", color="#2e7d32", ms=2.5, lw=0.8,
                alpha=0.85, label=truth_label)
    if "alert" in df:
        al = df["alert"].astype(bool).to_numpy()
        if al.any():
            ax.plot(t[al], df["count"][al], "o", color="#d50000", ms=7, label="alert")
            for ti, ci in zip(t[al], df["count"][al]):
                ax.annotate(f"{int(ci)}", (ti, ci), textcoords="offset points", xytext=(4, 4),
                            color="#d50000", fontsize=8)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if external is not None and len(external):
        ax2 = ax.twinx()
        ax2.plot(pd.to_datetime(external["time"], utc=True), external["value"], color="#ef6c00", lw=1.2,
                 marker="s", ms=3, label=external_label or "external series")
        ax2.set_ylabel(external_label or "external", color="#ef6c00")
        h2, l2 = ax2.get_legend_handles_labels()
        handles += h2
        labels += l2
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=min(len(handles), 6),
              fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def band(scored, z_threshold: float = 3.5):
    """Add the plotted columns to a frame from :func:`monitor.baseline.score`:
    ``baseline`` (expected count at the scene's coverage), ``lo``/``hi`` (the
    expected count minus / plus ``z_threshold`` robust spreads, scaled to
    coverage), ``low_coverage`` (not valid, so not scored) and ``alert``
    (spike, record or the onset of a sustained rise: what
    :func:`monitor.alerts.alerts_from_scores` alerts). Returns the frame."""
    sc = scored
    cov = sc["coverage"].clip(upper=1.0).fillna(1.0) if "coverage" in sc else 1.0
    sc["baseline"] = sc["expected"] * cov
    sc["lo"] = ((sc["expected"] - z_threshold * sc["spread"]).clip(lower=0)) * cov
    sc["hi"] = (sc["expected"] + z_threshold * sc["spread"]) * cov
    sc["low_coverage"] = ~sc["valid"].astype(bool)
    sc["alert"] = sc["spike"].astype(bool) | sc["record"].astype(bool)
    if "rise" in sc:
        sc["alert"] |= sc["rise"].fillna(False).astype(bool)
    return sc


def plot_observations(obs, out: "str | Path", *, title: str, unit: str = "count", window_years: float = 5.0,
                      truth=None, external=None, external_label: str | None = None, **score_options) -> Path:
    """Score one series of observations (``acquired``, ``count``, optional
    ``coverage``) with :func:`monitor.baseline.score` and write :func:`plot_series`
    with its baseline band (see :func:`band`)."""
    from monitor.baseline import score

    z_thr = float(score_options.get("z_threshold", 3.5))
    sc = band(score(obs, window_years=window_years, **score_options), z_thr)
    return plot_series(sc, out, title=title, unit=unit, external=external, external_label=external_label,
                       truth=truth)


def plot_store(store, aoi: str, out: "str | Path", *, cls: str | None = None, series: str | None = None,
               window_years: float = 5.0, truth=None, **score_options) -> Path:
    """Score one AOI's observations in ``store`` and write :func:`plot_series`.

    aoi: the AOI id; cls: the object class (default the AOI's most
    observed class); series: the name of an external series in the store
    to draw on a second axis; truth: optional true counts (``acquired``,
    ``count``) drawn beside the observed ones. The band is the baseline's
    expected count (scaled to each scene's coverage) plus and minus the
    spike threshold times the robust spread.
    """
    from monitor.alerts import aoi_name, plural
    from monitor.errors import InputError
    from monitor.store import main_class

    obs = store.observations(aoi=aoi, cls=cls)
    if obs.empty:
        raise InputError(aoi, f"no observations in the store {store.path}" + (f" for class {cls!r}" if cls else ""))
    if cls is None:
        cls = main_class(obs)  # the most observed class; size-class series (vessel_large) only when asked
        obs = obs[obs["class"] == cls]
    ext = store.series(series) if series else None
    label = series
    if ext is not None and "unit" in ext and ext["unit"].notna().any() and str(ext["unit"].dropna().iloc[0]):
        label = f"{series} ({ext['unit'].dropna().iloc[0]})"
    return plot_observations(obs, out, title=f"{aoi_name(aoi)}: {plural(cls)} per scene ({window_years:g}-year baseline)",
                             unit=f"{plural(cls)} per scene", window_years=window_years, truth=truth, external=ext,
                             external_label=label, **score_options)
