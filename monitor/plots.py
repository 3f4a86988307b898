"""Pictures analysts trust a number by: time series and quicklooks (PNG).

- :func:`plot_series`: counts over time for one AOI and class, with the
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


def chip_rgb(chip, *, percentiles=(2, 98)) -> np.ndarray:
    """A display image (h, w, 3) float in 0..1 from a chip's bands.

    Optical: red/green/blue when present, else the gray band; SAR: the
    first polarisation in dB. Stretched per band between the given
    percentiles of valid pixels; invalid pixels are shown black.
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
    for i, layer in enumerate(layers):
        v = layer[valid] if valid.any() else layer.ravel()
        lo, hi = np.percentile(v, percentiles) if v.size else (0.0, 1.0)
        out[..., i] = np.clip((layer - lo) / max(hi - lo, 1e-6), 0, 1)
    out[~valid] = 0
    return out


def quicklook(chip, results, out: "str | Path", *, title: str | None = None, max_labels: int = 400) -> Path:
    """Write a PNG of ``chip`` with every detection outlined and numbered.

    ``results`` is a list of :class:`monitor.detect.DetectionResult` whose
    geometries are in the chip's CRS. AOI tracks and water outlines are drawn
    thinly for context. Returns the PNG path.
    """
    plt = _plt()
    from matplotlib.patches import Polygon as MplPolygon

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img = chip_rgb(chip)
    h, w = img.shape[:2]
    t = chip.transform
    extent = (t.c, t.c + t.a * w, t.f + t.e * h, t.f)
    scale = min(16.0, max(6.0, w / 150))
    fig, ax = plt.subplots(figsize=(scale, scale * h / max(w, 1) + 0.8), dpi=110)
    ax.imshow(img, extent=extent, interpolation="nearest")
    la = chip.local_aoi
    for f in la.tracks + la.bridges:
        x, y = f.geometry.xy
        ax.plot(x, y, color="#00e5ff", lw=0.5, alpha=0.5)
    for f in la.water:
        geoms = getattr(f.geometry, "geoms", [f.geometry])
        for g in geoms:
            x, y = g.exterior.xy
            ax.plot(x, y, color="#2979ff", lw=0.7, alpha=0.6)
    x, y = la.boundary.exterior.xy
    ax.plot(x, y, color="white", lw=0.8, ls="--", alpha=0.7)
    counts: dict[str, int] = {}
    colours = {"railcar": "#ffea00", "vessel": "#ff1744"}
    k = 0
    for r in results:
        for name, c in r.counts.items():
            counts[name] = counts.get(name, 0) + int(c)
        for d in r.detections:
            k += 1
            geoms = getattr(d.geometry, "geoms", [d.geometry])
            for g in geoms:
                ax.add_patch(MplPolygon(np.asarray(g.exterior.coords), closed=True, fill=False,
                                        ec=colours.get(d.cls, "#ff9100"), lw=0.9))
            if k <= max_labels:
                c = d.geometry.centroid
                ax.text(c.x, c.y, str(k), color="white", fontsize=5, ha="center", va="center",
                        bbox=dict(boxstyle="square,pad=0.05", fc="black", ec="none", alpha=0.5))
    what = ", ".join(f"{v} {n}{'s' if v != 1 else ''}" for n, v in counts.items()) or "nothing detected"
    when = getattr(chip.scene, "acquired", None)
    head = title or f"{chip.aoi.name}: {what}"
    sub = f"{when:%Y-%m-%d %H:%M} UTC, " if when else ""
    ax.set_title(f"{head}\n{sub}{chip.gsd_m:.2f} m GSD, coverage {chip.coverage:.0%}", fontsize=10)
    ax.set_xlabel(f"easting (m, {chip.crs})", fontsize=7)
    ax.set_ylabel("northing (m)", fontsize=7)
    ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_series(scored, out: "str | Path", *, title: str, unit: str = "count",
                external=None, external_label: str | None = None, alerts=None) -> Path:
    """Write a PNG of a scored count series.

    scored: a DataFrame from :func:`monitor.baseline.score` for one AOI and
        class, with columns ``acquired``, ``count``, and where available
        ``baseline`` (the robust centre), ``lo``/``hi`` (the band),
        ``low_coverage`` (bool) and ``alert`` (bool).
    external: optional DataFrame with ``time`` and ``value`` drawn on a
        second axis (e.g. monthly exports, US$ million).
    """
    plt = _plt()
    import pandas as pd

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df = scored.sort_values("acquired")
    t = pd.to_datetime(df["acquired"], utc=True)
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=110)
    if "hi" in df and "lo" in df:
        ax.fill_between(t, df["lo"].astype(float), df["hi"].astype(float), color="#90caf9", alpha=0.45,
                        step="post", label="baseline band", lw=0)
    if "baseline" in df:
        ax.plot(t, df["baseline"].astype(float), color="#1565c0", lw=1.0, drawstyle="steps-post",
                label="baseline (median of prior years)")
    low = df["low_coverage"].astype(bool).to_numpy() if "low_coverage" in df else np.zeros(len(df), bool)
    ax.plot(t[~low], df["count"][~low], "o-", color="#212121", ms=2.5, lw=0.6, label="observed")
    if low.any():
        ax.plot(t[low], df["count"][low], "o", mfc="none", mec="#9e9e9e", ms=4, label="low coverage (not scored)")
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
    ax.legend(handles, labels, loc="upper left", fontsize=7, frameon=False)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_store(store, aoi: str, out: "str | Path", *, cls: str | None = None, series: str | None = None,
               window_years: float = 5.0, **score_options) -> Path:
    """Score one AOI's observations in ``store`` and write :func:`plot_series`.

    aoi: the AOI id; cls: the object class (default the AOI's most
    observed class); series: the name of an external series in the store
    to draw on a second axis. The band is the baseline's expected count
    (scaled to each scene's coverage) plus and minus the spike threshold
    times the robust spread.
    """
    from monitor.alerts import aoi_name
    from monitor.baseline import score
    from monitor.errors import InputError

    obs = store.observations(aoi=aoi, cls=cls)
    if obs.empty:
        raise InputError(aoi, f"no observations in the store {store.path}" + (f" for class {cls!r}" if cls else ""))
    if cls is None:
        cls = obs["class"].value_counts().index[0]
        obs = obs[obs["class"] == cls]
    z_thr = float(score_options.get("z_threshold", 3.5))
    sc = score(obs, window_years=window_years, **score_options)
    cov = sc["coverage"].clip(upper=1.0).fillna(1.0) if "coverage" in sc else 1.0
    sc["baseline"] = sc["expected"] * cov
    sc["lo"] = ((sc["expected"] - z_thr * sc["spread"]).clip(lower=0)) * cov
    sc["hi"] = (sc["expected"] + z_thr * sc["spread"]) * cov
    sc["low_coverage"] = ~sc["valid"].astype(bool)
    sc["alert"] = sc["spike"].astype(bool) | sc["record"].astype(bool)
    ext = store.series(series) if series else None
    unit = f"{cls}s per scene"
    return plot_series(sc, out, title=f"{aoi_name(aoi)}: {cls}s per scene ({window_years:g}-year baseline)",
                       unit=unit, external=ext, external_label=series)
