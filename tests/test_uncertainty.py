"""Count intervals: how many true objects a detection result stands for."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom
from shapely.geometry import box

from monitor.detect import Detection, DetectionResult, detect
from monitor.errors import InputError
from monitor.uncertainty import (
    Band, apply_uncertainty, capacity, count_interval, extrapolate, find_band, fit_band, load_calibration, mode_key,
    pmf_interval, poisson_binomial, sky_of, true_count_pmf,
)

#: a detector that is right about 95% of its confident detections, 50% of
#: its weak ones, and finds 80% of the objects
BAND = Band(cls="railcar", mode="cars", gsd_m=0.5, score_edges=(0.6,), precision=(0.5, 0.95), n_det=(100, 100),
            recall=0.8)


def _result(scores, *, interval=None, mode="cars", cls="railcar"):
    dets = [Detection(geometry=box(i * 20, 0, i * 20 + 14, 3), cls=cls, score=s, length_m=14, width_m=3)
            for i, s in enumerate(scores)]
    n = len(dets)
    return DetectionResult(counts={cls: n}, intervals={cls: interval or (float(n), float(n))}, coverage=1.0,
                           detections=dets, crs="EPSG:32652", detector="test", version="0",
                           extras={"mode": mode, "gsd_m": 0.5})


def test_poisson_binomial_is_the_binomial_for_equal_probabilities():
    pmf = poisson_binomial([0.3] * 12)
    assert pmf.sum() == pytest.approx(1.0)
    assert pmf == pytest.approx(binom.pmf(np.arange(13), 12, 0.3))


def test_a_perfect_detector_gives_the_count_itself():
    perfect = Band("railcar", "cars", 0.5, (), (1.0,), (10,), recall=1.0)
    ci = count_interval([0.9] * 17, perfect)
    assert (ci.lo, ci.hi) == (17, 17) and ci.expected == pytest.approx(17.0, abs=1e-3)


def test_confident_detections_give_a_narrow_interval_weak_ones_a_wide_lower_one():
    sure = count_interval([0.95] * 40, BAND)
    weak = count_interval([0.3] * 40, BAND)
    # 40 detections, 95% true -> 38 true, 80% recall -> about 48 objects
    assert sure.lo <= 48 <= sure.hi and 38 <= sure.lo
    assert weak.expected < sure.expected
    assert (weak.hi - weak.lo) > (sure.hi - sure.lo) * 0.9
    assert weak.lo < 25 < weak.hi  # half of them true: about 20 / 0.8


def test_no_detection_at_a_low_recall_pixel_size_still_has_an_upper_bound_above_zero():
    coarse = Band("railcar", "length", 3.0, (), (0.7,), (50,), recall=0.6, recall_ab=(6.0, 4.0))
    ci = count_interval([], coarse)
    assert ci.lo == 0 and ci.hi >= 1
    # a detector that finds every object: nothing found means nothing there
    assert count_interval([], Band("railcar", "cars", 0.5, (), (0.9,), (50,), recall=1.0)).hi == 0


def test_the_upper_bound_never_exceeds_what_the_visible_track_can_hold():
    poor = Band("railcar", "length", 3.0, (), (0.5,), (50,), recall=0.1, recall_ab=(0.5, 4.5))
    free = count_interval([0.4] * 5, poor)
    res = _result([0.4] * 5, mode="length")
    res.extras.update(visible_m=240.0, per_track={"t1": {}, "t2": {}})
    assert capacity(res, "railcar") == 240 // 12 + 2 + 1
    apply_uncertainty(res, 3.0, bands=[poor], combine="calibrated")
    lo, hi = res.intervals["railcar"]
    assert free.hi > 23 and hi <= 23 and lo <= 5
    assert capacity(res, "vessel") is None


def test_wider_level_nests_the_narrower_and_more_spread_widens():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 30)
    p = np.where(scores > 0.6, 0.95, 0.5)
    pmf = true_count_pmf(p, 0.8)
    lo80, hi80 = pmf_interval(pmf, 0.8)
    lo90, hi90 = pmf_interval(pmf, 0.9)
    assert lo90 <= lo80 <= hi80 <= hi90
    spread = true_count_pmf(p, 0.8, recall_ab=(8.0, 2.0), logit_sd=1.0)
    lo_s, hi_s = pmf_interval(spread, 0.9)
    assert hi_s - lo_s > hi90 - lo90
    with pytest.raises(InputError, match="level"):
        pmf_interval(pmf, 1.5)


def test_the_interval_covers_the_true_count_at_about_its_level_when_the_model_holds():
    # 40 true objects, each found with 0.8; every detection true with 0.95
    rng = np.random.default_rng(3)
    band = Band("railcar", "cars", 0.5, (), (0.95,), (100,), recall=0.8)
    hits = []
    for _ in range(300):
        tp = rng.binomial(40, 0.8)
        fp = rng.negative_binomial(tp, 0.95) if tp else 0
        ci = count_interval([0.9] * (tp + fp), band)
        hits.append(ci.lo <= 40 <= ci.hi)
    assert 0.84 <= np.mean(hits) <= 0.97


def test_apply_replaces_a_point_interval_keeps_the_count_and_says_how():
    res = apply_uncertainty(_result([0.95] * 10), bands=[BAND])
    lo, hi = res.intervals["railcar"]
    assert res.counts["railcar"] == 10
    assert lo < hi and lo >= 9
    info = res.extras["uncertainty"]["railcar"]
    assert info["calibrated"] and info["band"] == "railcar/cars@0.5m" and info["level"] == 0.9
    assert info["mean_p"] == pytest.approx(0.95)


def test_a_detector_interval_is_combined_and_an_unknown_mode_keeps_its_own():
    coarse = Band("railcar", "length", 3.0, (), (0.9,), (50,), recall=0.9)
    res = _result([0.4] * 10, interval=(6.0, 25.0), mode="length")
    apply_uncertainty(res, 3.0, bands=[coarse])
    assert res.intervals["railcar"][0] <= 6 and res.intervals["railcar"][1] >= 25
    assert res.extras["uncertainty"]["railcar"]["detector_interval"] == [6.0, 25.0]
    own = apply_uncertainty(_result([0.4] * 3, mode="blob"), bands=[BAND])
    assert own.intervals["railcar"] == (3.0, 3.0)
    assert own.extras["uncertainty"]["railcar"]["calibrated"] is False
    with pytest.raises(InputError, match="combine"):
        apply_uncertainty(res, bands=[BAND], combine="mean")


def test_bands_are_found_by_class_mode_and_nearest_pixel_size():
    bands = [Band("railcar", "cars", g, (), (0.9,), (1,), recall=0.9) for g in (0.5, 1.0)]
    assert find_band(bands, "railcar", "cars", 0.3).gsd_m == 0.5
    assert find_band(bands, "railcar", "cars", 0.9).gsd_m == 1.0
    assert find_band(bands, "vessel", "cars", 0.5) is None
    assert mode_key(_result([], mode="optical") ) == "optical"
    r = _result([], mode="optical")
    r.extras["classifier"] = "vessel_gbt_s2"
    assert mode_key(r) == "optical+classifier"


def test_a_scene_of_known_cloud_cover_uses_the_band_of_its_sky():
    mk = lambda sky, r: Band("railcar", "cars", 0.5, (), (0.95,), (50,), recall=r, sky=sky)  # noqa: E731
    bands = [mk("any", 0.8), mk("clear", 0.95), mk("cloudy", 0.4)]
    assert find_band(bands, "railcar", "cars", 0.5, sky_of(2.0)).sky == "clear"
    assert find_band(bands, "railcar", "cars", 0.5, sky_of(40.0)).sky == "cloudy"
    assert find_band(bands, "railcar", "cars", 0.5, sky_of(None)).sky == "any"
    assert find_band(bands[:1], "railcar", "cars", 0.5, "cloudy").sky == "any"
    clear = apply_uncertainty(_result([0.95] * 30), bands=bands, cloud_cover=0.0).intervals["railcar"]
    cloudy = apply_uncertainty(_result([0.95] * 30), bands=bands, cloud_cover=60.0).intervals["railcar"]
    assert clear[1] < cloudy[1]  # under cloud more cars go unseen


def test_fit_band_from_scenes():
    rng = np.random.default_rng(5)
    scenes = []
    for _ in range(8):
        s = rng.uniform(0, 1, 40)
        true = rng.uniform(0, 1, 40) < np.where(s > 0.5, 0.95, 0.4)
        scenes.append((s, true, int(true.sum() / 0.75)))
    b = fit_band("railcar", "cars", 1.0, scenes, n_bins=4)
    assert len(b.precision) == len(b.score_edges) + 1
    assert list(b.precision) == sorted(b.precision)  # monotone in score
    assert b.precision[0] < 0.6 < 0.9 < b.precision[-1]
    assert b.recall == pytest.approx(0.75, abs=0.03)
    assert Band.from_dict(json.loads(json.dumps(b.to_dict()))) == b
    with pytest.raises(InputError):
        fit_band("railcar", "cars", 1.0, [])


def test_the_bundled_table_covers_the_detector_modes():
    keys = {(b.cls, b.mode) for b in load_calibration()}
    assert {("railcar", "cars"), ("railcar", "length"), ("vessel", "optical"), ("vessel", "sar")} <= keys


def test_a_broken_calibration_file_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "cal.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="cal.json"):
        load_calibration(bad)
    bad.write_text(json.dumps({"bands": [{"cls": "railcar", "mode": "cars", "gsd_m": 1, "score_edges": [0.5],
                                          "precision": [0.9], "recall": 0.8}]}))
    with pytest.raises(InputError, match="precisions"):
        load_calibration(bad)


def test_extrapolate_to_the_whole_yard():
    assert extrapolate((10, 20), 0.5) == (20.0, 40.0)
    with pytest.raises(InputError, match="coverage"):
        extrapolate((10, 20), 0.01)


def test_detect_gives_calibrated_intervals():
    from test_detect import _yard_chip

    (res,) = detect(_yard_chip(with_tracks=True))
    lo, hi = res.intervals["railcar"]
    assert res.counts["railcar"] == 5 and lo <= hi
    assert res.extras["uncertainty"]["railcar"]["calibrated"]
    (raw,) = detect(_yard_chip(with_tracks=True), uncertainty=False)
    assert raw.intervals["railcar"] == (5.0, 5.0) and "uncertainty" not in raw.extras


def test_series_plot_draws_interval_whiskers(tmp_path):
    from monitor.plots import interval_bars, plot_series

    df = pd.DataFrame({"acquired": pd.date_range("2024-01-01", periods=4, freq="7D", tz="UTC"),
                       "count": [10, 12, 11, 30], "count_lo": [9, 10, np.nan, 26], "count_hi": [14, 15, np.nan, 38]})
    lo, hi = interval_bars(df)
    assert list(hi[[0, 1, 3]]) == [14, 15, 38] and np.isnan(lo[2])
    assert interval_bars(df.assign(count_lo=df["count"], count_hi=df["count"])) is None
    assert interval_bars(df.drop(columns=["count_lo"])) is None
    out = plot_series(df, tmp_path / "s.png", title="t")
    assert out.stat().st_size > 5000
