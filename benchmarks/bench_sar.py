"""SAR ship detector benchmark on synthetic radar port scenes.

Run: ``python benchmarks/bench_sar.py [--vessels] [--seeds N] [--first-seed I] [--gsd 5,10,20]
[--aoi najin,dunay] [--looks N] [--blur R [--hide-resolution]] [--water-shift M] [--beam-ratio Q]
[--no-pairs] [--holdout-gsd 10]``.

Renders SAR port scenes (monitor.synth: linear sigma0, 4-look gamma
speckle, bright land clutter and quays, ships as clusters of scatterers
with sidelobes) from seeds the tests do not use, runs
:func:`monitor.detect.sar.detect_ships_sar` (or, with ``--vessels``,
:func:`monitor.detect.vessels.detect_vessels`, i.e. whatever its SAR
branch does) and prints, per GSD, precision / recall / F1 for ships >= 30 m
with the one-to-one IoU >= 0.25 match of benchmarks/common.py, the F1 with
a loose match (IoU >= 0.1 or centroid <= 20 m), the median length error of
matched ships, and the detect time.

Variants: ``--blur 21 --looks 5`` at 10 m is a Sentinel-1 IW GRDH-like
product (speckle-free sigma0 through a 21 m impulse response, times
correlated 5-look speckle; ``--hide-resolution`` keeps the 21 m from the
detector, which then measures it from the speckle); ``--water-shift 100``
moves the AOI's water polygons by 100 m (a GSHHG-like land mask);
``--first-seed 10 --seeds 20`` is a holdout set of seeds. By default the
run ends with the ``--holdout-gsd`` GSDs (10 m) on held-out seeds: 9211-9230
(their figures were looked at while the two-hull split was developed) and
9231-9240 (never looked at before being printed).

Scoring: every true ship >= 30 m must be found; a detection matched to a
smaller true ship is neither hit nor false alarm; an unmatched detection
shorter than 24 m is not counted (same rule as bench_vessels.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Score, match, median  # noqa: E402

SEEDS = tuple(range(9201, 9241))  # the tests use none of these


def _long_side(g) -> float:
    r = g.minimum_rotated_rectangle
    c = np.asarray(r.exterior.coords)[:3]
    return float(max(np.hypot(*(c[1] - c[0])), np.hypot(*(c[2] - c[1]))))


def _loose(det, tru, min_iou=0.1, max_dist_m=20.0):
    import shapely

    pairs = []
    for i, g in enumerate(det):
        for j, t in enumerate(tru):
            d = float(shapely.distance(g.centroid, t.centroid))
            u = g.union(t).area
            v = g.intersection(t).area / u if u > 0 else 0.0
            if v >= min_iou or d <= max_dist_m:
                pairs.append((-v, d, i, j))
    pairs.sort()
    ud, ut, out = set(), set(), []
    for _, _, i, j in pairs:
        if i not in ud and j not in ut:
            ud.add(i)
            ut.add(j)
            out.append((i, j))
    return out


def grd_speckle(rng, shape, looks=5, resolution_px=2.1):
    """Multi-look speckle of a GRD product sampled finer than its resolution:
    ``looks`` complex Gaussian looks through a Gaussian impulse response
    (intensity FWHM ``resolution_px`` pixels), averaged; mean 1, marginal
    ENL ~ ``looks``, neighbours correlated as in Sentinel-1 IW GRDH."""
    from scipy.ndimage import gaussian_filter

    s_a = resolution_px / 2.3548 * 2 ** 0.5
    acc = np.zeros(shape)
    for _ in range(int(looks)):
        f = gaussian_filter(rng.standard_normal(shape), s_a) + 1j * gaussian_filter(rng.standard_normal(shape), s_a)
        acc += np.abs(f) ** 2
    return (acc / acc.mean()).astype(np.float32)


def scene(aoi, gsd_m, seed, looks=4, resolution_m=None):
    """(chip, truth polygons) of one synthetic SAR port scene (``looks``-look
    speckle). ``resolution_m``: a GRD-like product of that resolution
    instead: the speckle-free sigma0 blurred by a Gaussian impulse response
    (FWHM ``resolution_m`` including the pixel), times correlated
    ``looks``-look speckle (:func:`grd_speckle`); the resolution is recorded
    in ``chip.meta["resolution_m"]``."""
    from monitor.imagery import Chip
    from monitor.synth import render_port_scene

    grd = bool(resolution_m and resolution_m > gsd_m)
    sc = render_port_scene(aoi, gsd_m=gsd_m, when=datetime(2024, 6, 1, tzinfo=timezone.utc), seed=seed, sensor="sar",
                           looks=100_000 if grd else looks)
    bands = np.asarray(sc.bands, dtype=np.float32)
    meta = {}
    if grd:
        from scipy.ndimage import gaussian_filter

        sd = (resolution_m ** 2 - gsd_m ** 2) ** 0.5 / 2.3548 / gsd_m
        rng = np.random.default_rng(seed)
        bands = np.stack([gaussian_filter(b, sd) * grd_speckle(rng, b.shape, looks, resolution_m / gsd_m)
                          for b in bands]).astype(np.float32)
        meta["resolution_m"] = float(resolution_m)
    chip = Chip(bands=bands, roles=tuple(sc.roles), valid=np.any(bands != 0, axis=0), transform=sc.transform,
                crs=sc.crs, gsd_m=float(sc.gsd_m), aoi=aoi, sensor="sar", meta=meta)
    return chip, [t.polygon for t in sc.truth if t.cls == "vessel"]


def shift_water(chip, metres):
    """The chip with its AOI's water polygons moved ``metres`` to the north-east
    (a land mask of ~100-200 m accuracy, like the GSHHG polygons of the
    bundled AOIs): land strips fall inside the water and hulls outside."""
    from dataclasses import replace

    import shapely.affinity

    if not metres:
        return chip
    local = chip.aoi.to_crs(chip.crs)
    d = metres / 2 ** 0.5
    feats = tuple(replace(f, geometry=shapely.affinity.translate(f.geometry, d, d)) if f.role in ("water", "berth")
                  else f for f in local.features)
    chip.aoi = replace(local, features=feats)
    chip.__dict__.pop("local_aoi", None)
    return chip


def run(aois, gsds, seeds, via_vessels=False, verbose=False, water_shift_m=0.0, looks=4, blur_to_m=None,
        hide_resolution=False, label="", **options):
    from monitor.detect.sar import detect_ships_sar
    from monitor.detect.vessels import detect_vessels
    from monitor.detect.water import water_mask

    for gsd in gsds:
        tot, loose = Score(0, 0, 0), Score(0, 0, 0)
        t_det, n_sc, lerr = 0.0, 0, []
        for aoi in aois:
            for seed in seeds:
                chip, truth = scene(aoi, gsd, seed, looks, blur_to_m)
                if hide_resolution:
                    chip.meta.pop("resolution_m", None)
                chip = shift_water(chip, water_shift_m)
                t0 = time.perf_counter()
                if via_vessels:
                    res = detect_vessels(chip, **options)
                    det = [(d.geometry, d.length_m) for d in res.detections]
                else:
                    water, _ = water_mask(chip)
                    ships = detect_ships_sar(chip, water, **options)
                    det = [(s.polygon, s.length_m) for s in ships]
                t_det += time.perf_counter() - t0
                n_sc += 1
                geoms = [g for g, _ in det]
                big = [_long_side(t) >= 30 for t in truth]
                for rule in ("iou", "loose"):
                    m = [(i, j) for i, j, _ in match(geoms, truth, 0.25)] if rule == "iou" else _loose(geoms, truth)
                    md = {i for i, _ in m}
                    tp = sum(1 for _, j in m if big[j])
                    fp = sum(1 for i, (_, L) in enumerate(det) if i not in md and L >= 24.0)
                    s = Score(tp, fp, sum(big) - tp)
                    if rule == "iou":
                        tot = tot + s
                        lerr += [abs(det[i][1] - _long_side(truth[j])) for i, j in m if big[j]]
                        if verbose and (s.fp or s.fn):
                            print(f"    {aoi.id} seed {seed}: {s.line()}")
                    else:
                        loose = loose + s
        what = "detect_vessels" if via_vessels else "detect_ships_sar"
        shift = f", water polygons off by {water_shift_m:g} m" if water_shift_m else ""
        shift += f", {looks}-look speckle" if looks != 4 and not blur_to_m else ""
        if blur_to_m:
            shift += (f", GRD-like: {blur_to_m:g} m resolution ({'not ' if hide_resolution else ''}given), "
                      f"correlated {looks}-look speckle")
        if options:
            shift += ", " + ", ".join(f"{k}={v}" for k, v in options.items())
        seed_s = f"{len(seeds)} seeds {seeds[0]}-{seeds[-1]}{label}" if seeds else "0 seeds"
        print(f"SAR {what}{shift} at {gsd:g} m ({', '.join(a.id for a in aois)}, {seed_s}), ships >= 30 m, "
              f"IoU>=0.25: {tot.line()} | loose F1={loose.f1:.3f} | median |length error| {median(lerr):.1f} m | "
              f"detect {t_det / max(n_sc, 1) * 1000:.0f} ms/scene (chip {chip.shape[1]}x{chip.shape[0]} px)")


def main(argv=None):
    from monitor.aoi import load_aoi

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vessels", action="store_true", help="run detect_vessels instead of detect_ships_sar")
    ap.add_argument("--seeds", type=int, default=10, help="number of seeds (from 9201)")
    ap.add_argument("--gsd", default="5,10,20")
    ap.add_argument("--aoi", default="najin,dunay")
    ap.add_argument("--water-shift", type=float, default=0.0,
                    help="move the AOI water polygons by this many metres (land-mask error)")
    ap.add_argument("--blur", type=float, default=None,
                    help="GRD-like product of this resolution in metres, correlated speckle (Sentinel-1 IW GRDH: "
                         "--blur 21 --looks 5 at 10 m)")
    ap.add_argument("--hide-resolution", action="store_true", help="do not tell the detector the --blur resolution")
    ap.add_argument("--beam-ratio", type=float, default=None, help="max_beam_ratio option of detect_ships_sar")
    ap.add_argument("--no-pairs", action="store_true", help="fit_pairs=False (no one-or-two-hull model fit)")
    ap.add_argument("--looks", type=int, default=4, help="speckle looks of the synthetic scenes")
    ap.add_argument("--first-seed", type=int, default=0, help="index of the first seed (a holdout: 10)")
    ap.add_argument("--holdout-gsd", default="10",
                    help="after the main run, these GSDs on the held-out seeds (the 30 after the first 10: "
                         "9211-9220 and 9221-9230 looked at while developing, 9231-9240 fresh); '' for none")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    aois = [load_aoi(x) for x in a.aoi.split(",")]
    kw = dict(via_vessels=a.vessels, verbose=a.verbose, water_shift_m=a.water_shift, looks=a.looks, blur_to_m=a.blur,
              hide_resolution=a.hide_resolution, **({"max_beam_ratio": a.beam_ratio} if a.beam_ratio else {}),
              **({"fit_pairs": False} if a.no_pairs else {}))
    run(aois, [float(g) for g in a.gsd.split(",")], SEEDS[a.first_seed: a.first_seed + a.seeds], **kw)
    if a.holdout_gsd and a.first_seed == 0 and a.seeds <= 10:
        gs = [float(g) for g in a.holdout_gsd.split(",")]
        run(aois, gs, SEEDS[10:30], label=", held-out", **kw)
        run(aois, gs, SEEDS[30:40], label=", held-out, never looked at", **kw)


if __name__ == "__main__":
    main()
