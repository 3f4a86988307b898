"""Are the count intervals honest? Coverage of the true count, and width.

Run: /work/venv/bin/python benchmarks/bench_uncertainty.py [--quick] [--verbose] [--synth-only|--real-only]

For each condition it prints the share of scenes whose TRUE count lies in
the calibrated interval (:mod:`monitor.uncertainty`) at its nominal 90%
level, and at 80%, with the mean interval width (objects), beside the
same for the detector's own interval (a point at fine GSD). A share near
the nominal level is honest; far below it, the intervals are too narrow;
at 1.0 with a wide mean width, too cautious. Synthetic scenes tell the
calibration their cloud cover (as STAC ``eo:cloud_cover`` would): the
line also shows the coverage with the bands of all scenes (cover unknown). With 10 scenes a share is
known to about +-0.1 (binomial), so read the figures by their size.

- synthetic: scenes from :mod:`monitor.synth` on seeds 4601 + 1000 j + i
  (the calibration, tools/calibrate_uncertainty.py, uses 4201 + 1000 j + i;
  the other benchmarks 9000 on): railcars at 0.5, 1 and 3 m (every third
  scene with cloud 0.3; cars under thick cloud are not in the truth,
  detections on them are dropped), vessels at 3 m optical and 10 m radar.
  The true count is what the interval is about: the cars visible, the
  ships at least the detector's minimum length.
- muttenz (real 0.255 m aerial image, 178 labelled cars; track lines
  derived from the truth as in bench_railcars): one scene, in or out.
- sen2ships (9 real Sentinel-2 ports): the bundled ``optical+classifier``
  band was fitted on these very scenes (in-sample); the honest figure is
  leave-one-scene-out: the band fitted on 8 scenes, the interval of the
  9th.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import calibrate_uncertainty as cal  # noqa: E402

from monitor.uncertainty import apply_uncertainty, fit_band, load_calibration  # noqa: E402

#: (kind, sensor, gsd_m, scenes): the held-out conditions
CASES = [
    ("rail", "optical", 0.5, 6), ("rail", "optical", 1.0, 10), ("rail", "optical", 3.0, 10),
    ("port", "optical", 3.0, 10), ("port", "sar", 10.0, 10),
]
HELD_OUT = 400  # seed offset from the calibration seeds of the same plan line


def _plan_index(kind, sensor, gsd) -> int:
    for j, (k, s, g, _) in enumerate(cal.PLAN):
        if (k, s, g) == (kind, sensor, gsd):
            return j
    return len(cal.PLAN) + 1


def intervals(result, gsd, bands=None, cloud_cover=None) -> dict:
    """{name: (lo, hi)} of one class count: the detector's own, and the
    calibrated one at 90% and 80% (and, at 90%, combined with the
    detector's own by hull, the default, and the calibrated alone; and the
    bands of all scenes, as for a scene whose cloud cover is unknown)."""
    cls = next(iter(result.counts))
    out = {"detector": tuple(result.intervals[cls])}
    for name, level, combine, cc in (("90%", 0.9, "hull", cloud_cover), ("80%", 0.8, "hull", cloud_cover),
                                     ("90% calibrated only", 0.9, "calibrated", cloud_cover),
                                     ("90% cloud cover unknown", 0.9, "hull", None)):
        r = copy.copy(result)
        r.extras = copy.deepcopy(result.extras)
        r.intervals = dict(result.intervals)
        apply_uncertainty(r, gsd, bands=bands, level=level, combine=combine, cloud_cover=cc)
        out[name] = tuple(r.intervals[cls])
        if name == "90%":
            out["_info"] = r.extras["uncertainty"][cls]
    return out


class Tally:
    def __init__(self):
        self.rows = []

    def add(self, n_true: int, count: int, ivs: dict):
        self.rows.append((n_true, count, ivs))

    def line(self, name: str) -> str:
        if not self.rows:
            return f"{name}: no scenes"
        truth = np.array([r[0] for r in self.rows], float)
        count = np.array([r[1] for r in self.rows], float)
        parts = []
        for k in ("90%", "80%", "90% calibrated only", "90% cloud cover unknown", "detector"):
            if k.startswith("90% c") and all(r[2][k] == r[2]["90%"] for r in self.rows):
                continue
            lo = np.array([r[2][k][0] for r in self.rows], float)
            hi = np.array([r[2][k][1] for r in self.rows], float)
            cov = np.mean((lo <= truth) & (truth <= hi))
            parts.append(f"{k} covers {int(round(cov * len(truth)))}/{len(truth)} = {cov:.2f} "
                         f"(mean width {np.mean(hi - lo):.1f})")
        return (f"{name} ({len(truth)} scenes, mean true count {truth.mean():.1f}, mean |count - true| "
                f"{np.mean(np.abs(count - truth)):.1f}): " + "; ".join(parts))


def synthetic(quick: bool = False, verbose: bool = False) -> None:
    for kind, sensor, gsd, n in CASES:
        n = max(3, n // 3) if quick else n
        j = _plan_index(kind, sensor, gsd)
        t = Tally()
        t0 = time.perf_counter()
        for i in range(n):
            seed = cal.SEED0 + HELD_OUT + 1000 * j + i
            case = cal.scene_case(kind, sensor, gsd, seed, i)
            res, truth, hidden, other = cal.run_case(case)
            kept, _, n_true = cal.label(res, truth, hidden, other)
            cls = next(iter(kept.counts))
            ivs = intervals(kept, gsd, cloud_cover=100.0 * case["cloud"])  # cloud cover as asked (percent)
            t.add(n_true, kept.counts[cls], ivs)
            if verbose:
                print(f"  {kind} {sensor} {gsd:g} m seed {seed} {case['aoi']} cloud {case['cloud']:g}: true {n_true}, "
                      f"count {kept.counts[cls]}, 90% {ivs['90%']}, 80% {ivs['80%']}, detector {ivs['detector']} "
                      f"[{ivs['_info'].get('band')}]", flush=True)
        what = "railcars" if kind == "rail" else f"vessels {sensor}"
        print(t.line(f"synthetic {what} {gsd:g} m") + f" [{time.perf_counter() - t0:.0f} s]", flush=True)


def muttenz() -> None:
    import bench_railcars

    if not bench_railcars.MUTTENZ.exists():
        print(f"muttenz: skipped (no {bench_railcars.MUTTENZ})")
        return
    res, truth, _, chip = bench_railcars.muttenz()
    ivs = intervals(res, float(chip.gsd_m))
    n = len(truth)
    t = Tally()
    t.add(n, res.counts["railcar"], ivs)
    print(f"muttenz (real {chip.gsd_m:.3f} m, band {ivs['_info'].get('band')}, extrapolated "
          f"{ivs['_info'].get('extrapolated')}): count {res.counts['railcar']}, 90% {ivs['90%']}, 80% {ivs['80%']} "
          f"vs {n} labelled: {'IN' if ivs['90%'][0] <= n <= ivs['90%'][1] else 'OUT'} (90%)")


def sen2ships(verbose: bool = False) -> None:
    from monitor.errors import InputError

    try:
        rows = list(cal.sen2ships_cases())
    except InputError as e:
        print(f"sen2ships: failed ({e})")
        return
    if not rows:
        print(f"sen2ships: skipped ({cal.SEN2SHIPS} not found)")
        return
    labelled = [(name, *cal.label(res, truth)) for name, res, truth in rows]
    shipped = Tally()
    loso = Tally()
    for k, (name, kept, is_true, n_true) in enumerate(labelled):
        gsd = float(kept.extras.get("gsd_m", 10.0))
        ivs = intervals(kept, gsd)
        shipped.add(n_true, kept.counts["vessel"], ivs)
        others = [([d.score for d in o.detections], t, n) for i, (_, o, t, n) in enumerate(labelled) if i != k]
        band = fit_band("vessel", "optical+classifier", gsd, others)
        ivl = intervals(kept, gsd, bands=[band])
        loso.add(n_true, kept.counts["vessel"], ivl)
        if verbose:
            print(f"  sen2ships {name}: labelled {n_true}, count {kept.counts['vessel']}, in-sample 90% {ivs['90%']}, "
                  f"LOSO 90% {ivl['90%']} 80% {ivl['80%']}", flush=True)
    print(shipped.line("sen2ships, bundled band (IN-SAMPLE: fitted on these scenes)"))
    print(loso.line("sen2ships, leave-one-scene-out band"))


if __name__ == "__main__":
    args = set(sys.argv[1:])
    if not load_calibration():
        print("no bundled calibration table: run tools/calibrate_uncertainty.py first")
        sys.exit(1)
    verbose = "--verbose" in args
    if "--real-only" not in args:
        synthetic("--quick" in args, verbose)
    if "--synth-only" not in args:
        sen2ships(verbose)
        muttenz()
