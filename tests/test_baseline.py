"""The multi-year baseline: no look-ahead, irregular sampling, coverage, seasons, level shifts."""

import numpy as np
import pandas as pd
import pytest

from monitor.baseline import (anomaly_likelihood, distribution_change, recent_deviation, score, streaming_score,
                              sustained_rise)
from monitor.errors import InputError


def _weekly(counts, start="2018-01-03", aoi="tumangang", coverage=1.0, freq="7D"):
    t = pd.date_range(start, periods=len(counts), freq=freq, tz="UTC")
    return pd.DataFrame({"aoi_id": aoi, "class": "railcar", "acquired": t, "count": np.asarray(counts, float),
                         "coverage": coverage})


def _history(seed=0, n=260, lam=17):
    rng = np.random.default_rng(seed)
    return np.minimum(rng.poisson(lam, n), 30)


def test_73_cars_after_five_quiet_years_is_spike_and_record():
    df = _weekly(_history())
    df.loc[len(df)] = ["tumangang", "railcar", pd.Timestamp("2023-10-05", tz="UTC"), 73.0, 1.0]
    r = score(df)
    last = r.iloc[-1]
    assert last["spike"] and last["record"] and pd.isna(last["record_since"])
    assert 3.5 < last["ratio"] < 5.5 and last["z"] > 8
    assert not (r.iloc[:-1]["spike"] | r.iloc[:-1]["record"]).any()  # ordinary weeks raise nothing


def test_no_look_ahead():
    base = _weekly(_history(1))
    future = pd.DataFrame({"aoi_id": "tumangang", "class": "railcar",
                           "acquired": pd.date_range("2023-06-01", periods=20, freq="7D", tz="UTC"),
                           "count": 500.0, "coverage": 1.0})
    a = score(base)
    b = score(pd.concat([base, future], ignore_index=True))
    cols = ["median", "expected", "spread", "z", "spike", "record"]
    pd.testing.assert_frame_equal(a[cols], b.iloc[:len(a)][cols])


def test_irregular_sampling_and_groups_do_not_mix():
    rng = np.random.default_rng(3)
    days = np.sort(rng.choice(np.arange(5 * 365), 120, replace=False))
    t = pd.Timestamp("2018-01-01", tz="UTC") + pd.to_timedelta(days, unit="D")
    a = pd.DataFrame({"aoi_id": "a", "class": "railcar", "acquired": t, "count": rng.poisson(10, 120)})
    b = a.assign(aoi_id="b", count=a["count"] * 100)
    r = score(pd.concat([b, a]).sample(frac=1, random_state=0))
    ra = r[r.aoi_id == "a"]
    assert ra["median"].dropna().between(5, 15).all()
    assert not ra["spike"].any() and not r[r.aoi_id == "b"]["spike"].any()
    # a same-time pair never sees each other
    twin = pd.concat([a.iloc[:30], a.iloc[[29]].assign(count=99)])
    rt = score(twin)
    assert rt["n_history"].iloc[-1] == rt["n_history"].iloc[-2] == 29


def test_partial_coverage_kept_not_alerted_not_used():
    counts = _history(2, 200).astype(float)
    df = _weekly(counts)
    df.loc[100, ["count", "coverage"]] = [200.0, 0.3]  # a half-seen, garbage count
    r = score(df)
    assert len(r) == 200 and not r.loc[100, "valid"] and not r.loc[100, "spike"]
    assert np.isfinite(r.loc[100, "median"])
    assert r.loc[101, "n_history"] == r.loc[100, "n_history"]  # not used as baseline
    # an 80%-covered scene is compared per unit coverage: 0.8 x normal is normal
    df2 = _weekly(counts)
    df2.loc[150, ["count", "coverage"]] = [0.8 * 17, 0.8]
    assert not score(df2).loc[150, "spike"]


def test_level_shift_resets_baseline():
    rng = np.random.default_rng(5)
    counts = np.r_[rng.poisson(5, 150), rng.poisson(40, 150)]
    r = score(_weekly(counts))
    assert r.loc[150, "spike"] and r.loc[150, "level_shift"]
    assert (r.loc[150:, "regime"] == 1).all() and (r.loc[:149, "regime"] == 0).all()
    assert r.loc[160:, "spike"].sum() <= 2  # the new level does not alert forever
    assert r.loc[200:, "median"].between(30, 50).all()


def test_seasonal_adjustment_after_two_years():
    t = pd.date_range("2015-01-05", "2023-12-31", freq="7D", tz="UTC")
    rng = np.random.default_rng(7)
    lam = np.where(t.month.isin([6, 7, 8]), 26, 16)
    df = pd.DataFrame({"aoi_id": "p", "class": "vessel", "acquired": t, "count": rng.poisson(lam)})
    r = score(df)
    first_year = r[r.acquired < "2016-06-01"]
    assert (first_year["season"] == 0).all()  # not before two years of data
    later = r[r.acquired.dt.year >= 2019]
    july = later[later.acquired.dt.month == 7]
    assert july["season"].median() > 5 and later[later.acquired.dt.month == 1]["season"].median() < 0
    flat = score(df, season=None)
    flat_later = flat[flat.acquired.dt.year >= 2019]
    # the seasonal baseline explains summer: smaller summer z than without it
    assert july["z"].abs().mean() < flat_later[flat_later.acquired.dt.month == 7]["z"].abs().mean()


def test_drop_optional_and_bad_input():
    counts = _history(4, 120).astype(float)
    counts[-1] = 0
    df = _weekly(counts)
    assert not score(df)["drop"].any()
    assert score(df, drop=True)["drop"].iloc[-1]
    with pytest.raises(InputError, match="observations: need columns"):
        score(df.drop(columns="count"))
    with pytest.raises(InputError, match="season"):
        score(df, season="fortnight")
    assert score(df.iloc[:0]).empty


def test_anomaly_likelihood_range_streaming_and_per_series():
    rng = np.random.default_rng(3)
    quiet = np.clip(rng.normal(0.1, 0.02, 1500), 0, 1)
    noisy = np.clip(rng.uniform(0.0, 0.9, 1500), 0, 1)
    quiet[1200] = noisy[1200] = 0.9
    s = np.r_[quiet, noisy]
    keys = np.r_[np.zeros(1500), np.ones(1500)]
    lik = anomaly_likelihood(s, keys, short_window=1, learning=300)
    assert lik.shape == s.shape and np.all((lik >= 0) & (lik <= 1))
    assert np.all(lik[:300] == 0.5)  # learning period
    # the same 0.9 is alarming in the quiet series, ordinary in the noisy one
    assert lik[1200] > 0.9999 and lik[1500 + 1200] < 0.99
    # no look-ahead: changing later rows changes nothing before them
    s2 = s.copy()
    s2[1300:1500] = 1.0
    s2[2800:] = 0.0
    lik2 = anomaly_likelihood(s2, keys, short_window=1, learning=300)
    np.testing.assert_allclose(lik[:1300], lik2[:1300], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lik[1500:2800], lik2[1500:2800], rtol=1e-9, atol=1e-12)
    # shuffled input order with times gives the same per-row answer
    t = np.r_[np.arange(1500), np.arange(1500)] * np.timedelta64(5, "m") + np.datetime64("2020-01-01")
    perm = rng.permutation(len(s))
    lik3 = anomaly_likelihood(s[perm], keys[perm], t[perm], short_window=1, learning=300)
    np.testing.assert_allclose(lik3, lik[perm])
    with pytest.raises(InputError):
        anomaly_likelihood(s, keys[:10])


def test_recent_deviation_catches_small_lasting_shift_and_spread_change():
    rng = np.random.default_rng(4)
    z = rng.normal(0, 1, 600)
    z[300:] += 1.5  # too small for a point alarm, lasting
    z[450:] = rng.normal(0, 4, 150)  # wider residuals
    d = recent_deviation(z, windows=(36,), spread_window=36)
    assert np.all(d >= np.abs(z) - 1e-12)
    assert d[:300].max() < 5 and d[340] > 6 and d[480:].max() > 10
    z2 = z.copy()
    z2[400:] = 100.0
    np.testing.assert_allclose(d[:400], recent_deviation(z2, windows=(36,), spread_window=36)[:400], rtol=1e-9, atol=1e-9)


def _daily(n=3000, seed=8):
    """5-minute rows with a daily cycle and noise."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    t = pd.date_range("2021-03-01", periods=n, freq="5min", tz="UTC")
    return t, 50 + 20 * np.sin(2 * np.pi * i / 288) + rng.normal(0, 2, n)


def test_distribution_change_flags_a_new_regime_once_not_the_recurring_cycle():
    t, v = _daily()
    v[2000:2200] = 50 + np.random.default_rng(1).normal(0, 0.3, 200)  # stuck near the mean: a new rhythm
    d = distribution_change(v, times=t)
    assert set(np.unique(d)) <= {0.0, 1.0}
    new = np.flatnonzero(d)
    assert len(new) and (2000 <= new).any() and (new[(new >= 2000)] < 2120).any()
    # once the cycle has been seen for a day or two, ordinary days are rarely new (noise)
    assert d[700:2000].sum() <= 5 and d[2000:2060].any()
    # causal: later rows change nothing before them
    v2 = v.copy()
    v2[2500:] = 1000.0
    np.testing.assert_array_equal(d[:2500], distribution_change(v2, times=t)[:2500])
    # a constant series has nothing new; two series do not mix; bad options refused
    assert not distribution_change(np.full(500, 3.0)).any()
    keys = np.r_[np.zeros(len(v)), np.ones(len(v))]
    both = distribution_change(np.r_[v, np.full(len(v), 3.0)], keys=keys)
    np.testing.assert_array_equal(both[:len(v)], d)
    assert not both[len(v):].any()
    with pytest.raises(InputError, match="distribution_change"):
        distribution_change(v, window=1)


def test_streaming_score_spikes_and_shape_changes_streaming():
    t, v = _daily()
    v[1500] += 60  # a spike
    v[2400:2700] = 50 + 20 * np.sin(2 * np.pi * np.arange(300) / 24)  # a new rhythm within the usual range
    opts = dict(window="7D", season="hour", z_threshold=4.0, min_spread=1e-9, poisson_floor=False,
                shift_run=288, drop=True)
    s = streaming_score(v, t, **opts)
    assert s.shape == v.shape and np.all((s >= 0) & (s <= 1))
    point = streaming_score(v, t, novelty=False, **opts)
    assert np.all(point <= s)
    ordinary = np.r_[point[750:1490], point[1600:2390]]
    assert point[1500] > 0.7 and point[1500] > 1.5 * ordinary.max()
    assert s[2400:2430].max() == 1.0  # a new distribution within a few hours
    # no look-ahead
    v2 = v.copy()
    v2[2000:] = 0.0
    s2 = streaming_score(v2, t, **opts)
    np.testing.assert_allclose(s[:2000], s2[:2000])
    with pytest.raises(InputError, match="times"):
        streaming_score(v, t[:10])


def test_streaming_score_on_weekly_counts_keeps_the_73_car_alarm():
    df = _weekly(_history())
    df.loc[len(df)] = ["tumangang", "railcar", pd.Timestamp("2023-10-05", tz="UTC"), 73.0, 1.0]
    df = df.sample(frac=1, random_state=2)  # any row order
    last = len(df) - 1
    s = pd.Series(streaming_score(df["count"], df["acquired"], df["aoi_id"], coverage=df["coverage"],
                                  suppress="90D", novelty=False), index=df.index)
    assert s.loc[last] > 0.6  # z > 8 with z_threshold 3.5
    assert s.drop(index=last).max() < 0.5  # ordinary weeks stay low
    # the distribution-change part may call an ordinary week "new" now and then, not often
    s2 = pd.Series(streaming_score(df["count"], df["acquired"], df["aoi_id"], coverage=df["coverage"],
                                   suppress="90D"), index=df.index)
    assert s2.loc[last] >= s.loc[last] and (s2.drop(index=last) > 0.5).sum() <= 2


# -- sustained rises: several scenes, none a spike by itself ------------------
def _fortnightly(counts, coverage=1.0):
    t = pd.date_range("2019-01-02", periods=len(counts), freq="14D", tz="UTC")
    return pd.DataFrame({"aoi_id": "port", "class": "vessel", "acquired": t, "count": np.asarray(counts, float),
                         "coverage": coverage})


def test_rise_after_zeros_flags_the_onset_once():
    # 40 empty scenes, then 1, 1, 2, 1, ...: no scene is a spike, together they are a rise.
    r = score(_fortnightly([0] * 40 + [1, 1, 2, 1, 1, 2, 1, 1, 1, 2]))
    # the third raised scene (4 vessels where ~0.04 expected) is just short (p 1.1e-4 after the
    # adjustment for six window lengths), the fourth is the onset: 5 where ~0.05 expected
    assert list(np.flatnonzero(r["rise"])) == [43]
    assert 1e-4 < r.loc[42, "rise_p"] < 2e-4
    onset = r.loc[43]
    assert onset["rise_n"] == 4 and onset["rise_count"] == 5 and onset["rise_expected"] < 0.1
    assert onset["rise_p"] < 1e-5 and onset["rise_start"] == r.loc[40, "acquired"]
    assert onset["rise_ref_start"] == r.loc[0, "acquired"]
    assert not r["spike"].any() and not r["level_shift"].any()  # the point tests see nothing
    assert (r.loc[44:, "rise_p"] < 1e-4).all()  # still significant later, but not alerted again


def test_single_spike_is_not_a_rise():
    r = score(_fortnightly([0] * 40 + [9] + [0] * 10))
    assert r.loc[40, "spike"] and not r["rise"].any()  # the largest scene is capped at the second largest


def test_overdispersed_noise_raises_no_rise():
    for seed in range(4):  # gamma-Poisson counts (variance ~ 6x the mean), no change
        rng = np.random.default_rng(seed)
        r = score(_fortnightly(rng.poisson(rng.gamma(2.0, 5.0, 300))))
        assert not r["rise"].any(), seed


def test_busier_yard_rises_once_small_counts():
    rng = np.random.default_rng(3)
    r = score(_fortnightly(np.r_[rng.poisson(3, 130), rng.poisson(6, 30)]))
    rises = np.flatnonzero(r["rise"])
    assert len(rises) == 1 and 130 <= rises[0] < 145  # within a dozen scenes of the doubling
    assert not r["level_shift"].any()  # 4 scenes beyond z 3 in a row: too strict for counts this small


def test_rise_per_unit_coverage():
    rng = np.random.default_rng(0)
    counts = np.r_[rng.poisson(4, 60), np.full(10, 7)]
    assert not score(_fortnightly(counts))["rise"].any()  # 7 in full scenes: within the noise
    partial = score(_fortnightly(counts, coverage=np.r_[np.ones(60), np.full(10, 0.7)]))
    assert partial["rise"].sum() == 1  # 7 in 70 % of the port: 10 a full scene
    low = score(_fortnightly(counts, coverage=np.r_[np.ones(60), np.full(10, 0.3)]))
    assert not low["rise"].any() and low.loc[60:, "rise_p"].isna().all()  # below min_coverage: not used


def test_rise_after_level_shift_uses_new_regime():
    rng = np.random.default_rng(5)
    r = score(_fortnightly(np.r_[rng.poisson(5, 150), rng.poisson(40, 150)]))
    assert r.loc[150, "level_shift"] and not r["rise"].any()
    assert (r.loc[156:, "rise_ref_start"] >= r.loc[150, "acquired"]).all()


def test_rise_no_look_ahead_and_switch():
    rng = np.random.default_rng(1)
    base = _fortnightly(np.r_[rng.poisson(2, 80)])
    more = pd.concat([base, _fortnightly(np.full(20, 9.0)).assign(
        acquired=lambda d: d["acquired"] + pd.Timedelta(days=14 * 80))], ignore_index=True)
    cols = ["rise", "rise_n", "rise_count", "rise_expected", "rise_p"]
    pd.testing.assert_frame_equal(score(base)[cols], score(more).iloc[:80][cols])
    off = score(more, rise=False)
    assert not off["rise"].any() and off["rise_p"].isna().all() and (off["rise_n"] == 0).all()


def test_rise_against_the_recent_years_after_a_busier_past():
    # a port with a big ship now and then (2 years), none for 3 years (a border shut), then one
    # or two every month: against the whole 5 years the new level is only ~2x the old average,
    # against the quiet recent half it is a rise.
    counts = [1, 0, 2, 0, 1, 0, 0, 3, 1, 0, 2, 0] * 2 + [0] * 36 + [1, 1, 2, 1, 1, 1, 2, 1]
    t = pd.date_range("2018-01-15", periods=len(counts), freq="30D", tz="UTC")
    df = pd.DataFrame({"aoi_id": "port", "class": "vessel_large", "acquired": t, "count": np.asarray(counts, float),
                       "coverage": 1.0})
    whole = score(df, rise_references=(1.0,))
    assert not whole["rise"].any() and whole["rise_p"].min() > 1e-3
    r = score(df)  # default: the whole window and its recent half
    assert list(np.flatnonzero(r["rise"])) == [63]  # the fourth new scene: 5 ships where ~0.1 expected
    onset = r.loc[63]
    assert onset["rise_ref_start"] >= t[24] and onset["rise_start"] == t[60]  # measured against the quiet years
    assert not r.loc[:59, "rise"].any()


def test_one_odd_reference_scene_is_not_noise():
    # Three false hulls in one scene of a quiet port's past weigh like three hulls in three scenes
    # (the same rate), not like a noisy port: the reference's top scene is capped at its second
    # largest for the overdispersion, as the window's is for its sum.
    def run(past):
        c = past + [1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1]  # a ship in two scenes out of three
        t = pd.date_range("2019-01-10", periods=len(c), freq="30D", tz="UTC")
        return score(pd.DataFrame({"aoi_id": "port", "class": "vessel_large", "acquired": t,
                                   "count": np.asarray(c, float), "coverage": 1.0}), rise_references=(1.0,))
    spread, odd = [0] * 56, [0] * 56
    spread[10] = spread[25] = spread[40] = 1
    odd[40] = 3
    a, b = run(spread), run(odd)
    assert np.isclose(a["rise_p"].min(), b["rise_p"].min(), rtol=1e-6) and b["rise_p"].min() < 1e-4
    assert list(np.flatnonzero(a["rise"])) == list(np.flatnonzero(b["rise"])) == [67]


def test_rise_bad_options_are_one_line_errors():
    df = _fortnightly([0] * 20)
    for kw in ({"rise_windows": ()}, {"rise_windows": (0, 3)}, {"rise_alpha": 0.0}, {"rise_alpha": 2.0},
               {"rise_references": ()}, {"rise_references": (1.0, 0.0)}, {"rise_references": (1.5,)}):
        with pytest.raises(InputError) as e:
            score(df, **kw)
        assert "\n" not in str(e.value) and str(e.value).startswith("rise_")
    with pytest.raises(InputError, match="^sustained_rise: rows must be sorted"):
        sustained_rise(np.zeros(3, dtype=int), np.array([0, 20, 10]), np.ones(3), np.ones(3))


def test_sustained_rise_on_a_series_shorter_than_its_windows():
    # five observations against windows of up to 8: nothing to test, and no error
    t = pd.date_range("2024-01-01", periods=5, freq="30D", tz="UTC")
    obs = pd.DataFrame({"acquired": t, "count": [0, 1, 0, 2, 1], "coverage": 1.0,
                        "aoi_id": "a", "class": "vessel"})
    sc = score(obs)
    assert len(sc) == 5 and not sc["rise"].any()
