"""Multi-year baseline and spike / record / drop / sustained-rise scoring of count series.

    scored = score(store.observations(aoi="tumangang"))
    scored[scored.spike | scored.record]

For every observation the baseline is built from the same series' (AOI,
class) valid observations *strictly before* it (no look-ahead) within the
prior window (default 5 years):

- centre: the median of the prior counts (per unit coverage, see below);
- seasonal adjustment: once the series spans ``min_season_cycles`` (2) years,
  the median of the prior residuals of the same season (month of year by
  default) is added to the centre;
- spread: 1.4826 x the median absolute one-step-ahead residual (a MAD of
  what the baseline failed to predict), floored by the Poisson spread
  sqrt(expected count), by half the mean absolute residual (so a mostly
  flat series still has a spread) and by ``min_spread``;
- robust z = (count - expected) / spread.

Observations with ``coverage < min_coverage`` are kept and get a baseline,
but they are neither alerted nor used in any baseline. Counts of partly
covered observations are compared per unit coverage (count / coverage), so
a scene that saw 80 % of the tracks is not compared with a full one as if
they were alike.

Level shifts: when ``shift_run`` consecutive valid observations all lie
beyond ``shift_z`` on the same side, the regime has changed (a border
reopened or closed). Those observations are scored against the old
regime (so the first of them alerts), and from then on the baseline only
uses data from the start of the new regime, so the new level does not
alert forever.

Sustained rises (:func:`sustained_rise`, the ``rise`` columns): a port
that never saw a large ship and now has one or two in every scene, a yard
a little busier scene after scene, where no observation is a spike by
itself and small counts keep the level-shift rule's z small. For each
valid observation the sums of the last 3, 4, 5, 6, 8 and 12 valid
observations of its regime are compared with what the prior window before
them, and its recent half, predict (quasi-Poisson, overdispersion of single scenes and of
sums of nearby scenes, the largest scene capped at the second largest so
that one spike is not a rise); the onset of a significant run is flagged.

Streaming scores for dense series (sensor feeds, the NAB benchmark, long
daily count series): :func:`streaming_score` gives one anomaly score in
[0, 1] per row from the rows up to it, the larger of the onset point score
(robust z of :func:`score`, one per excursion) and :func:`distribution_change`
(1 where the last ``window`` values form a distribution never seen before
in the series: relative entropy against stored histograms). It does not
change :func:`score` nor the alerts built on it.

Everything is vectorised: the rolling medians over irregular times run as
single pandas time-window rolls over all series at once (each series is
moved onto its own stretch of a common time axis, far enough apart that
windows never mix series).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.errors import InputError

#: 1.4826 * MAD estimates the standard deviation of normal data.
MAD_SCALE = 1.4826

_SEASONS = {
    "month": lambda t: t.dt.month.to_numpy(),
    "quarter": lambda t: t.dt.quarter.to_numpy(),
    "week": lambda t: t.dt.isocalendar().week.to_numpy().astype(int),
    "dayofweek": lambda t: t.dt.dayofweek.to_numpy(),
    "hour": lambda t: t.dt.hour.to_numpy(),
}

#: Window lengths (valid scenes) of the sustained-rise test. Up to 12: a
#: ship in every other scene over a background of ~0.03 a scene (E ~0.2 in
#: 8 scenes) needs 6 of 8 scenes to pass p < 1e-4, half of the times; in 12
#: scenes (a year of monthly looks) 6 of 12 suffice, what that rate gives.
RISE_WINDOWS = (3, 4, 5, 6, 8, 12)

#: Seconds in the (Julian) year used for window lengths.
YEAR_S = 365.25 * 86400

#: The cycle each season kind repeats over, in seconds.
_CYCLE_S = {"month": YEAR_S, "quarter": YEAR_S, "week": YEAR_S, "dayofweek": 7 * 86400.0, "hour": 86400.0}


_OUT_COLUMNS = ("valid", "n_history", "rate", "median", "season", "expected", "spread", "z", "ratio",
                "window_max", "alertable", "spike", "record", "record_since", "first_time", "drop",
                "level_shift", "regime", "anomaly", "rise", "rise_n", "rise_count", "rise_expected", "rise_p",
                "rise_start", "rise_ref_start")


def _roll(codes: np.ndarray, t_s: np.ndarray, values: np.ndarray, window_s: float, op: str,
          order: np.ndarray | None = None) -> np.ndarray:
    """Rolling ``op`` over the prior ``window_s`` seconds (strictly before),
    within each group ``codes``. NaN values are ignored. Returns per-row results
    in the input order."""
    n = len(values)
    if n == 0:
        return np.empty(0)
    if order is None:
        order = np.lexsort((t_s, codes))
    c, t, v = codes[order], t_s[order], values[order]
    # Lay the groups end to end on one time axis with gaps wider than the window.
    start = np.zeros(n, dtype=bool)
    start[0] = True
    start[1:] = c[1:] != c[:-1]
    gid = np.cumsum(start) - 1
    t0 = t[start]
    span = (t.max() - t.min()) if n else 0
    gap = int(span + window_s + 86400)
    tt = (t - t0[gid]) + gid.astype(np.int64) * gap
    idx = pd.DatetimeIndex(tt.astype("datetime64[s]"))
    s = pd.Series(v, index=idx)
    r = getattr(s.rolling(f"{int(window_s)}s", closed="left", min_periods=1), op)()
    out = np.empty(n)
    out[order] = r.to_numpy(dtype=float)
    return out


def _runs_start(codes, valid_scored, z, shift_z, shift_run, order, exclude):
    """Indices (input order) of the first row of each run of >= shift_run
    consecutive scored rows (per group, time order) beyond ±shift_z; only the
    earliest such run of each group that is not in ``exclude`` is returned."""
    o = order[valid_scored[order]]
    if len(o) == 0:
        return np.empty(0, dtype=np.int64)
    c = codes[o]
    sign = np.where(z[o] >= shift_z, 1, np.where(z[o] <= -shift_z, -1, 0))
    brk = np.ones(len(o), dtype=bool)
    brk[1:] = (sign[1:] != sign[:-1]) | (c[1:] != c[:-1])
    rid = np.cumsum(brk) - 1
    length = np.bincount(rid)
    first = o[brk]
    ok = (length >= shift_run) & (sign[brk] != 0)
    cand = first[ok]
    cand = cand[~np.isin(cand, exclude)]
    if len(cand) == 0:
        return cand
    # earliest per group (o is time ordered within group, so first occurrence)
    _, keep = np.unique(codes[cand], return_index=True)
    return cand[keep]


def score(observations: pd.DataFrame, *, window_years: float = 5.0, window: str | pd.Timedelta | None = None,
          min_coverage: float = 0.6, z_threshold: float = 3.5, min_history: int = 8, min_spread: float = 1.0,
          season: str | None = "month", min_season_cycles: float = 2.0, shift_run: int = 4,
          shift_z: float = 3.0, record_z: float = 3.0, record_min_years: float = 2.0, drop: bool = False, max_passes: int = 12, poisson_floor: bool = True,
          mean_floor: float = 0.5, rise: bool = True, rise_windows: tuple[int, ...] = RISE_WINDOWS,
          rise_alpha: float = 1e-4, rise_references: tuple[float, ...] = (1.0, 0.5),
          time: str = "acquired", value: str = "count", coverage: str | None = "coverage",
          by: tuple[str, ...] | list[str] | None = None) -> pd.DataFrame:
    """Score every observation against its own prior baseline.

    observations: a frame with a time column ``time`` (UTC; naive = UTC),
        counts ``value``, optional ``coverage`` (0..1, default 1) and the
        series keys ``by`` (default those of ``aoi_id``, ``class`` present).
    window_years / window: the prior window (a pandas offset/Timedelta
        such as ``"7D"`` overrides ``window_years``).
    min_coverage: observations below this coverage are neither alerted nor
        used in a baseline.
    z_threshold: robust z above which an observation is a spike (and below
        minus which a drop, when ``drop``).
    min_history: prior valid observations needed before scoring (after a
        level shift, ``shift_run`` suffice for the new regime).
    min_spread: lower bound of the spread (counts per full coverage).
    poisson_floor: floor the spread by sqrt(expected count) (counts of
        objects); switch off for amounts such as money.
    mean_floor: floor the spread by this share of the mean absolute
        residual (x 1.2533), so a series that is mostly flat (MAD 0) with
        rare moves still has a spread.
    season: ``"month"`` (default), ``"quarter"``, ``"week"``,
        ``"dayofweek"``, ``"hour"`` or None.
    min_season_cycles: the seasonal term is used once the series spans
        this many cycles of the season (years for month/quarter/week, weeks
        for dayofweek, days for hour) and the season was seen in two cycles.
    shift_run, shift_z: a run of ``shift_run`` consecutive valid
        observations beyond ``shift_z`` on one side starts a new regime.
    record_z: a record (above every valid count in the window) must also be
        at least this many spreads above the baseline to be flagged, and the
        series must be at least ``record_min_years`` old.
    rise, rise_windows, rise_alpha, rise_references: test for a sustained
        rise (see :func:`sustained_rise`) over the last ``m`` valid
        observations for each ``m`` in ``rise_windows``, against the prior
        window and its recent shares ``rise_references``, at level
        ``rise_alpha`` (Bonferroni over windows and references);
        ``rise=False`` skips it (columns stay empty).

    Returns a copy of the frame sorted by series and time with columns:
    ``valid`` (coverage ok), ``n_history`` (prior valid observations in the
    baseline), ``rate`` (count / coverage), ``median`` (centre), ``season``
    (seasonal term), ``expected``, ``spread``, ``z``, ``ratio`` (rate /
    expected), ``window_max``, ``alertable``, ``spike``, ``record``,
    ``record_since`` (time of the last earlier count at least as high; NaT
    = since records began), ``first_time`` (the series' first valid
    observation), ``drop``, ``level_shift`` (the first observation of a new
    regime), ``regime`` (0, 1, ...) and ``anomaly`` (|z| mapped to [0, 1]:
    |z| / (|z| + z_threshold), 0 where not scored).
    """
    df = observations
    if time not in df.columns or value not in df.columns:
        raise InputError("observations", f"need columns {time!r} and {value!r}")
    if by is None:
        by = [c for c in ("aoi_id", "class") if c in df.columns]
    by = list(by)
    t = pd.to_datetime(df[time], utc=True)
    if t.isna().any():
        raise InputError("observations", f"{int(t.isna().sum())} rows have no time")
    wseconds = (pd.Timedelta(window).total_seconds() if window is not None else window_years * YEAR_S)
    if wseconds <= 0:
        raise InputError("observations", "the baseline window must be positive")

    if season and season not in _SEASONS:
        raise InputError("season", f"unknown season {season!r}; choose one of {', '.join(_SEASONS)}")
    out = df.copy()
    out[time] = t
    if len(out) == 0:
        for c in _OUT_COLUMNS:
            out[c] = pd.Series(dtype=float)
        return out
    # Sort by series then time on integer keys (much faster than sorting strings).
    codes0 = (out.groupby(by, sort=True, dropna=False).ngroup().to_numpy() if by
              else np.zeros(len(out), dtype=np.int64))
    t_ns = t.dt.as_unit("ns").astype("int64").to_numpy()
    o0 = np.lexsort((t_ns, codes0))
    out = out.take(o0).reset_index(drop=True)
    t = out[time]
    n = len(out)
    codes = codes0[o0]
    t_s = t_ns[o0] // 10**9
    t_s = t_s - (t_s.min() if n else 0)
    x_raw = pd.to_numeric(out[value], errors="coerce").to_numpy(dtype=float)
    cov = (pd.to_numeric(out[coverage], errors="coerce").fillna(1.0).to_numpy(dtype=float)
           if coverage and coverage in out.columns else np.ones(n))
    valid = np.isfinite(x_raw) & (cov >= min_coverage) & (cov > 0)
    rate = np.where(valid, x_raw / np.where(cov > 0, cov, 1.0), np.nan)
    cov_eff = np.where(cov > 0, np.minimum(cov, 1.0), 1.0)

    order = np.lexsort((t_s, codes))
    seas = _SEASONS[season](t) if season else None

    # Quantities that ignore regimes: window maximum, first time, all-time max.
    window_max = _roll(codes, t_s, rate, wseconds, "max", order)
    big = float(t_s.max() + 1) if n else 1.0
    ever_max = _roll(codes, t_s, rate, big, "max", order)
    tv = np.where(valid, t_s.astype(float), np.nan)
    first_s = _roll(codes, t_s, tv, big, "min", order)

    regime = np.zeros(n, dtype=np.int64)
    starts = np.empty(0, dtype=np.int64)
    frozen = np.zeros(n, dtype=bool)
    stats = None
    frozen_stats = None
    for _ in range(max(1, max_passes)):
        rcodes = codes * (len(starts) + 1) + regime if len(starts) else codes
        if len(starts):
            _, rcodes = np.unique(rcodes, return_inverse=True)
        rorder = np.lexsort((t_s, rcodes))
        st = _baseline(rcodes, t_s, rate, cov_eff, valid, wseconds, seas,
                       (min_season_cycles, _CYCLE_S.get(season or '', YEAR_S)), min_spread, rorder,
                       poisson_floor, mean_floor)
        if frozen.any():
            for k in st:
                st[k][frozen] = frozen_stats[k][frozen]
        need = np.where(regime > 0, min(shift_run, min_history), min_history)
        alertable = valid & (st["n_history"] >= need) & np.isfinite(st["z"])
        stats = st
        new = _runs_start(codes, alertable, st["z"], shift_z, shift_run, order, starts)
        if len(new) == 0:
            break
        # Rows of each new run (shift_run valid rows from its start) keep
        # their old-regime scores; later rows get the new regime.
        vo = order[valid[order]]
        vpos = np.empty(n, dtype=np.int64)
        vpos[vo] = np.arange(len(vo))
        newly = np.zeros(n, dtype=bool)
        for s0 in new:
            run_rows = vo[vpos[s0]:vpos[s0] + shift_run]
            newly[run_rows[codes[run_rows] == codes[s0]]] = True
        newly &= ~frozen
        if frozen_stats is None:
            frozen_stats = {k: v.copy() for k, v in st.items()}
        else:
            for k, v in st.items():
                frozen_stats[k][newly] = v[newly]
        frozen |= newly
        starts = np.sort(np.concatenate([starts, new]))
        # regime = number of starts at or before each row within its group
        is_start = np.zeros(n, dtype=np.int64)
        is_start[starts] = 1
        cs = np.cumsum(is_start[order])
        gfirst = np.r_[True, codes[order][1:] != codes[order][:-1]]
        base = np.maximum.accumulate(np.where(gfirst, np.arange(n), 0))
        before = cs - is_start[order]
        reg_o = cs - (before[base])
        regime = np.empty(n, dtype=np.int64)
        regime[order] = reg_o
    st = stats
    need = np.where(regime > 0, min(shift_run, min_history), min_history)
    alertable = valid & (st["n_history"] >= need) & np.isfinite(st["z"])
    z = st["z"]
    spike = alertable & (z >= z_threshold)
    span_ok = (t_s - np.nan_to_num(first_s, nan=np.inf)) >= record_min_years * YEAR_S
    rec = alertable & span_ok & (rate > np.nan_to_num(window_max, nan=-np.inf)) & (z >= record_z)
    drp = alertable & (z <= -z_threshold) if drop else np.zeros(n, dtype=bool)

    since = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    # rows are sorted by series then time, so each series is one slice
    gstart = np.r_[0, np.flatnonzero(codes[1:] != codes[:-1]) + 1] if n else np.empty(0, dtype=np.int64)
    gstart_of = gstart[np.searchsorted(gstart, np.arange(n), side="right") - 1] if n else gstart
    t_np = t.dt.tz_convert(None).to_numpy().astype("datetime64[s]")
    for i in np.flatnonzero(rec & (rate <= np.nan_to_num(ever_max, nan=-np.inf))):
        lo = gstart_of[i]
        seg = slice(lo, i)
        prior = valid[seg] & (t_s[seg] < t_s[i]) & (rate[seg] >= rate[i])
        j = np.flatnonzero(prior)
        if len(j):
            since[i] = t_np[lo + j[-1]]
    shift_flag = np.zeros(n, dtype=bool)
    shift_flag[starts] = True

    absz = np.abs(np.nan_to_num(z, nan=0.0))
    out["valid"] = valid
    out["n_history"] = st["n_history"].astype(int)
    out["rate"] = rate
    out["median"] = st["median"]
    out["season"] = st["season"]
    out["expected"] = st["expected"]
    out["spread"] = st["spread"]
    out["z"] = z
    out["ratio"] = np.where(st["expected"] > 0, rate / np.where(st["expected"] > 0, st["expected"], 1), np.nan)
    out["window_max"] = window_max
    out["alertable"] = alertable
    out["spike"] = spike
    out["record"] = rec
    out["record_since"] = pd.to_datetime(since).tz_localize("UTC")
    t_origin = t.min() if n else pd.Timestamp(0, tz="UTC")
    out["first_time"] = t_origin + pd.to_timedelta(first_s, unit="s")
    out["drop"] = drp
    out["level_shift"] = shift_flag
    out["regime"] = regime
    out["anomaly"] = np.where(alertable, absz / (absz + z_threshold), 0.0)
    rcodes = codes * (int(regime.max()) + 1) + regime  # sorted like the rows (regime grows with time)
    need = np.where(regime > 0, min(shift_run, min_history), min_history)
    if rise:
        rs = sustained_rise(rcodes, t_s, np.where(valid, x_raw, np.nan), cov_eff, need, window_s=wseconds,
                            windows=rise_windows, alpha=rise_alpha, references=rise_references)
    else:
        rs = {"rise": np.zeros(n, dtype=bool), "n": np.zeros(n, dtype=np.int64), "count": np.full(n, np.nan),
              "expected": np.full(n, np.nan), "p": np.full(n, np.nan), "start": np.full(n, -1, dtype=np.int64),
              "ref_start": np.full(n, -1, dtype=np.int64)}
    out["rise"] = rs["rise"]
    out["rise_n"] = rs["n"]
    out["rise_count"] = rs["count"]
    out["rise_expected"] = rs["expected"]
    out["rise_p"] = rs["p"]
    tt = pd.DatetimeIndex(t)
    for col, key in (("rise_start", "start"), ("rise_ref_start", "ref_start")):
        k = rs[key]
        out[col] = tt.take(np.maximum(k, 0)).where(k >= 0)
    return out


def sustained_rise(codes: np.ndarray, t_s: np.ndarray, counts: np.ndarray, coverage: np.ndarray,
                   min_history: int | np.ndarray = 8, *, window_s: float = 5 * YEAR_S,
                   windows: tuple[int, ...] = RISE_WINDOWS, alpha: float = 1e-4,
                   references: tuple[float, ...] = (1.0, 0.5),
                   prior: tuple[float, float] = (0.5, 0.0), report_p: float = 0.05) -> dict:
    """Onsets of rises sustained over several observations, none a spike on its own.

    Rows must be sorted by series ``codes`` then time ``t_s`` (seconds);
    ``counts`` are NaN for rows not to use (low coverage, no count);
    ``coverage`` (0..1] is each row's observed share of the AOI;
    ``min_history`` (scalar or per row) is the least number of reference
    observations.

    For each usable row and each ``m`` in ``windows``, the ``m`` usable rows
    of its series ending at it (the window) are compared with the usable
    rows of the ``f x window_s`` seconds before the window's first row for
    each share ``f`` in ``references`` (the references, strictly before the
    window: no look-ahead). The default (1.0, 0.5) compares with the whole
    prior window and with its recent half: a port that saw a few big ships
    a scene years ago, then none for three years while a border was shut,
    and now one every scene, has risen against the recent years even if
    not yet against the older, busier ones. Each reference:

    - reference rate per unit coverage ``(sum + prior[0]) / (coverage sum +
      prior[1])`` (default: the Jeffreys posterior mean, so an all-zero
      reference still predicts a little: 0.5 objects over its scenes);
    - expected window sum ``E`` = rate x the window's coverage sum;
    - overdispersion ``phi`` = max(1, Pearson chi-square / (n - 1)) of the
      reference counts around its rate (var / mean for full coverage), and,
      where the reference holds at least ``2 m`` rows, at least the same of
      its overlapping ``m``-row sums (divided by ``blocks x (1 - m / n)``):
      nearby scenes share a level (a busy season, a slow drift), so a sum
      of ``m`` varies more than ``m`` independent scenes would (worked out
      only where p without it is below ``report_p``, as it only raises p);
      both times ``1 + window coverage / reference coverage``, the variance
      the estimated rate adds (a short reference predicts less surely);
    - window sum ``S`` with its largest count capped at its second largest
      (the rise must hold without its biggest scene, so one spike is not a
      sustained rise);
    - quasi-Poisson upper tail ``p = P(Poisson(E/phi) >= S/phi)`` (the
      regularised incomplete gamma), times ``len(windows)`` x the number
      of distinct references (Bonferroni; a shorter reference holding the
      same rows as a longer one, in a young series, is the same test);
      windows whose ``S`` is within one quasi-Poisson standard deviation
      ``sqrt(phi E)`` of ``E`` (p well above 0.1) are given p = 1 without
      computing it.

    A row is significant when the least adjusted ``p`` is below ``alpha``;
    the rise is flagged at the onset only: a significant row with no
    significant row among the ``max(windows)`` usable rows before it in its
    series. Vectorised with prefix sums and sorted searches (no loop over
    rows). Returns a dict of per-row arrays: ``rise`` (bool), ``n`` (window
    length of the least p, 0 = not tested), ``count`` (the window's actual
    sum), ``expected`` (E), ``p`` (adjusted, NaN = not tested), ``start``
    and ``ref_start`` (row indices of the window's and the least-p
    reference's first rows, -1 = none).
    """
    from scipy.special import gammainc

    n = len(counts)
    res = {"rise": np.zeros(n, dtype=bool), "n": np.zeros(n, dtype=np.int64), "count": np.full(n, np.nan),
           "expected": np.full(n, np.nan), "p": np.full(n, np.nan), "start": np.full(n, -1, dtype=np.int64),
           "ref_start": np.full(n, -1, dtype=np.int64)}
    windows = tuple(sorted({int(m) for m in windows}))
    if not windows or windows[0] < 1:
        raise InputError("rise_windows", "need one or more window lengths >= 1")
    if not 0 < alpha < 1:
        raise InputError("rise_alpha", f"must be between 0 and 1, got {alpha}")
    references = tuple(sorted({float(f) for f in references}, reverse=True))
    if not references or references[-1] <= 0 or references[0] > 1:
        raise InputError("rise_references", "need one or more shares of the window in (0, 1]")
    vi = np.flatnonzero(np.isfinite(counts))
    nv = len(vi)
    if nv == 0:
        return res
    g, tv = np.asarray(codes, dtype=np.int64)[vi], np.asarray(t_s, dtype=np.int64)[vi]
    xv = np.maximum(np.asarray(counts, dtype=float)[vi], 0.0)
    cv = np.clip(np.asarray(coverage, dtype=float)[vi], 1e-6, 1.0)
    need = np.broadcast_to(np.asarray(min_history), (n,))[vi]
    C = np.r_[0.0, np.cumsum(xv)]
    K = np.r_[0.0, np.cumsum(cv)]
    CC, KK = np.r_[0.0, np.cumsum(C)], np.r_[0.0, np.cumsum(K)]  # prefix sums of the prefix sums
    Q = np.r_[0.0, np.cumsum(xv * xv / cv)]
    first = np.r_[True, g[1:] != g[:-1]]
    gs = np.maximum.accumulate(np.where(first, np.arange(nv), 0))  # first usable row of the series
    w = int(np.ceil(window_s))
    tv0 = tv - tv.min()
    big = int(tv0.max()) + w + 1
    # series laid end to end on one axis (gaps wider than the window): one sorted search for all
    key = (np.cumsum(first) - 1).astype(np.int64) * big + tv0
    if nv > 1 and (np.any(g[1:] < g[:-1]) or np.any(np.diff(key) < 0)):
        raise InputError("sustained_rise", "rows must be sorted by series code, then time")
    ref_hi = np.searchsorted(key, key, side="left")  # first row at the same time: reference ends before it
    rate_v = xv / cv  # counts per unit coverage
    top_table = _argmax_table(rate_v)
    j = np.arange(nv)
    # The references of a window starting at row i: usable rows in [t_i - f x window, t_i) of its
    # series for each share f in ``references`` (the whole window, and its recent part: a port
    # quiet for the last years is compared with those years, not only with a busier past).
    refs = []
    for f in references:
        ref_lo = np.searchsorted(key, key - int(np.ceil(f * w)), side="left")
        nref = ref_hi - ref_lo
        sr, cr, qr = C[ref_hi] - C[ref_lo], K[ref_hi] - K[ref_lo], Q[ref_hi] - Q[ref_lo]
        mle = np.where(cr > 0, sr / np.where(cr > 0, cr, 1.0), 0.0)
        # Pearson sum (x - r c)^2 / (r c) = Q / r - 2 S + r K, with the reference's largest scene
        # (per unit coverage) capped at its second largest: one odd scene (two false hulls where
        # 0.05 a scene are usual) does not make the whole reference look overdispersed, as one
        # spike in the window does not make a rise.
        a1, a2 = _range_top2(rate_v, ref_lo, ref_hi, top_table)
        has2 = a2 >= 0
        x1, c1 = xv[np.maximum(a1, 0)], cv[np.maximum(a1, 0)]
        x1c = np.where(has2, rate_v[np.maximum(a2, 0)] * c1, x1)  # the top scene at the second's rate
        sc_, qc_ = sr - x1 + x1c, qr - (x1 * x1 - x1c * x1c) / c1
        sc_, qc_ = np.where(a1 >= 0, sc_, sr), np.where(a1 >= 0, qc_, qr)
        pearson = np.where(mle > 0, qc_ / np.where(mle > 0, mle, 1.0) - 2 * sc_ + mle * cr, 0.0)
        cut = np.where(a1 >= 0, x1 - x1c, 0.0)  # taken off the top scene (also in the block sums below)
        # a shorter reference holding the same rows as the longer one is the same test
        same = (ref_lo == refs[-1]["lo"]) if refs else np.zeros(nv, dtype=bool)
        refs.append({"lo": ref_lo, "n": nref, "cov": cr, "mle": mle, "ok": (nref >= need) & ~same, "same": same,
                     "top": a1, "cut": cut, "lo_w": np.where(nref > 0, ref_lo, -1),
                     "rate": (sr + prior[0]) / np.maximum(cr + prior[1], 1e-9),  # rows with no reference are not tested
                     "phi": np.maximum(1.0, pearson / np.maximum(nref - 1, 1))})
    # Bonferroni over the windows and the distinct references of each window start
    n_tests = len(windows) * (len(refs) - np.sum([rf["same"] for rf in refs], axis=0))

    pos = j - gs  # position of each row in its series
    best = np.full(nv, np.inf)
    b_n = np.zeros(nv, dtype=np.int64)
    b_e = np.full(nv, np.nan)
    b_lo = np.full(nv, -1, dtype=np.int64)
    top1 = np.full(nv, -np.inf)
    top2 = np.full(nv, -np.inf)
    done = 0
    for m in windows:
        for k in range(done, min(m, nv)):  # the two largest counts of the last m rows (used only where
            v = xv[:nv - k]       # the window lies in one series, so no masking at series starts)
            t1, t2 = top1[k:], top2[k:]
            np.maximum(t2, np.minimum(t1, v), out=t2)
            np.maximum(t1, v, out=t1)
        done = m
        L = nv - m + 1  # windows ending at rows m-1..nv-1, starting at rows 0..L-1 (views, no copies)
        if L <= 0:
            break
        ssum = C[m:] - C[:L]
        wcov = K[m:] - K[:L]
        t1, t2 = top1[m - 1:], top2[m - 1:]
        capped = ssum - np.where(np.isfinite(t2), t1 - t2, t1)
        for rf in refs:
            ok = (pos[m - 1:] >= m - 1) & rf["ok"][:L]
            nref, cr = rf["n"], rf["cov"]
            e = rf["rate"][:L] * wcov
            lo_w = rf["lo_w"][:L]
            bst = best[m - 1:]
            # every tested window has p <= 1: a first test of a window end sets it to 1
            new = ok & np.isinf(bst)
            bst[new] = 1.0
            b_n[m - 1:][new] = m
            b_e[m - 1:][new] = e[new]
            b_lo[m - 1:][new] = lo_w[new]
            # p > 0.1 where the sum is within one quasi-Poisson sd of E: left at 1 (saves the gamma
            # calls); only windows above E can be below it, so the rest is worked out there alone
            cand = np.flatnonzero(ok & (capped > e))
            # the rate is itself estimated: Var(S - E) = phi E (1 + window coverage / reference coverage)
            infl = 1.0 + wcov[cand] / np.maximum(cr[cand], 1e-9)
            ph = rf["phi"][cand] * infl
            keep = capped[cand] - e[cand] > np.sqrt(ph * e[cand])
            up, infl, ph = cand[keep], infl[keep], ph[keep]
            pu = np.minimum(1.0, n_tests[up] * gammainc(capped[up] / ph, e[up] / ph))
            if m > 1:
                # overdispersion of m-scene sums: scenes close in time share a level (a busy season, a
                # slow drift), so their sum varies more than phi x E. Pearson of the reference's
                # overlapping m-row sums around its rate, bias-corrected for the rate fitted to the same
                # rows. It can only raise p, so it is only worked out where p is small (< report_p).
                w_st = np.flatnonzero(pu < report_p)
                w_st = w_st[nref[up[w_st]] >= 2 * m]
                if len(w_st):
                    st = up[w_st]  # window start rows
                    bl = C[m:] - C[:-m]  # sums of m rows starting at rows 0..nv-m
                    bk = np.maximum(K[m:] - K[:-m], 1e-9)
                    pq = np.r_[0.0, np.cumsum(bl * bl / bk)]
                    p1, p0 = np.r_[0.0, np.cumsum(bl / bk)], np.r_[0.0, np.cumsum(1.0 / bk)]
                    lo_b = rf["lo"][st]
                    nb = ref_hi[st] - m + 1 - lo_b  # such sums inside the reference
                    hi_b = lo_b + nb
                    # sums of the block sums and block coverages from the prefix sums C, K
                    sb = (CC[hi_b + m] - CC[lo_b + m]) - (CC[hi_b] - CC[lo_b])
                    kb = (KK[hi_b + m] - KK[lo_b + m]) - (KK[hi_b] - KK[lo_b])
                    # the reference's top scene capped as above: the blocks holding it lose ``cut``
                    a1s, d = rf["top"][st], rf["cut"][st]
                    s_lo = np.clip(a1s - m + 1, lo_b, hi_b)
                    s_hi = np.clip(a1s + 1, s_lo, hi_b)
                    sq = (pq[hi_b] - pq[lo_b]) - 2 * d * (p1[s_hi] - p1[s_lo]) + d * d * (p0[s_hi] - p0[s_lo])
                    sb = sb - d * (s_hi - s_lo)
                    r = rf["mle"][st]
                    pear_b = np.where(r > 0, sq / np.where(r > 0, r, 1.0) - 2 * sb + r * kb, 0.0)
                    phb = np.maximum(rf["phi"][st], pear_b / (nb * (1.0 - m / nref[st]))) * infl[w_st]
                    pb = np.minimum(1.0, n_tests[st] * gammainc(capped[st] / phb, e[st] / phb))
                    pu[w_st] = np.maximum(pu[w_st], pb)
            better = pu < bst[up]
            rows = up[better]
            bst[rows] = pu[better]
            b_n[m - 1:][rows] = m
            b_e[m - 1:][rows] = e[rows]
            b_lo[m - 1:][rows] = lo_w[rows]
    tested = b_n > 0
    s0 = np.where(tested, j - b_n + 1, 0)
    b_s = np.where(tested, C[j + 1] - C[s0], np.nan)
    b_e = np.where(tested, b_e, np.nan)
    b_start = np.where(tested, vi[s0], -1)
    b_ref = np.where(tested & (b_lo >= 0), vi[np.clip(b_lo, 0, nv - 1)], -1)
    sig = best < alpha
    cs = np.r_[0, np.cumsum(sig)]
    look = max(windows)
    onset = sig & (cs[j] - cs[np.maximum(gs, j - look)] == 0)
    res["rise"][vi] = onset
    res["n"][vi] = b_n
    res["count"][vi] = b_s
    res["expected"][vi] = b_e
    res["p"][vi] = np.where(np.isfinite(best), best, np.nan)
    res["start"][vi] = b_start
    res["ref_start"][vi] = b_ref
    return res


def _range_top2(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, table: list | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the largest and second largest ``x`` in each row range
    ``[lo, hi)`` (-1 where the range holds fewer rows), by a sparse table
    of range arg-maxima (``table``: one of :func:`_argmax_table` for the
    same ``x``, built here when None): O(n log n), no loop over ranges."""
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    table = _argmax_table(x) if table is None else table

    def argmax(l0, h0):
        out = np.full(len(l0), -1, dtype=np.int64)
        ln = h0 - l0
        ok = ln > 0
        lev = np.zeros(len(l0), dtype=np.int64)
        lev[ok] = np.floor(np.log2(ln[ok])).astype(np.int64)
        for kk in np.unique(lev[ok]):
            sel = ok & (lev == kk)
            t = table[kk]
            i1, i2 = t[l0[sel]], t[h0[sel] - (1 << kk)]
            out[sel] = np.where(x[i2] > x[i1], i2, i1)
        return out

    a1 = argmax(lo, hi)
    left = argmax(lo, np.where(a1 >= 0, a1, lo))
    right = argmax(np.where(a1 >= 0, a1 + 1, hi), hi)
    a2 = np.where(left < 0, right, np.where(right < 0, left, np.where(x[np.maximum(right, 0)] > x[np.maximum(left, 0)],
                                                                       right, left)))
    return a1, a2


def _argmax_table(x: np.ndarray) -> list:
    """Sparse table of arg-maxima: ``table[k][i]`` = index of the largest of ``x[i:i + 2**k]``."""
    n = len(x)
    table = [np.arange(n)]
    k = 1
    while (1 << k) <= n:
        prev, half = table[-1], 1 << (k - 1)
        a, b = prev[:n - (1 << k) + 1], prev[half:half + n - (1 << k) + 1]
        table.append(np.where(x[b] > x[a], b, a))
        k += 1
    return table


def _baseline(codes, t_s, rate, cov_eff, valid, wseconds, seas, season_need, min_spread, order,
              poisson_floor=True, mean_floor=0.5):
    """Centre, seasonal term, spread and z for every row from valid prior rows."""
    xv = np.where(valid, rate, np.nan)
    med = _roll(codes, t_s, xv, wseconds, "median", order)
    nh = np.nan_to_num(_roll(codes, t_s, xv, wseconds, "count", order), nan=0.0)
    resid = xv - med
    season = np.zeros(len(rate))
    if seas is not None:
        scodes = codes.astype(np.int64) * 1000 + seas
        sorder = np.lexsort((t_s, scodes))
        smed = _roll(scodes, t_s, resid, wseconds, "median", sorder)
        scount = _roll(scodes, t_s, np.where(np.isfinite(resid), 1.0, np.nan), wseconds, "count", sorder)
        tres = np.where(np.isfinite(resid), t_s.astype(float), np.nan)
        sfirst = _roll(scodes, t_s, tres, wseconds, "min", sorder)
        tfirst = _roll(codes, t_s, np.where(valid, t_s.astype(float), np.nan), wseconds, "min", order)
        cycles, cycle = season_need
        long_enough = (t_s - tfirst) >= (cycles - 1 / 12.0) * cycle
        two_seasons = (np.nan_to_num(scount) >= 2) & ((t_s - sfirst) >= 0.75 * cycle)
        use = long_enough & two_seasons & np.isfinite(smed)
        season = np.where(use, smed, 0.0)
    expected = np.maximum(med + season, 0.0)  # counts are never negative
    err = np.abs(xv - expected)
    mad = MAD_SCALE * _roll(codes, t_s, err, wseconds, "median", order)
    pois = np.sqrt(np.maximum(expected, 0.0) / cov_eff) if poisson_floor else np.zeros(len(rate))
    spread = np.fmax(np.fmax(mad, pois), min_spread)
    if mean_floor > 0:
        mean_abs = 1.2533 * _roll(codes, t_s, err, wseconds, "mean", order)
        spread = np.fmax(spread, mean_floor * mean_abs)
    z = (rate - expected) / spread
    return {"median": med, "season": season, "expected": expected, "spread": spread, "z": z, "n_history": nh}


# -- streaming post-processing of per-row scores ------------------------------
def _group_order(n, keys, times):
    """Row order by (key, time) and the sorted group codes."""
    codes = (pd.Series(keys).factorize()[0].astype(np.int64) if keys is not None
             else np.zeros(n, dtype=np.int64))
    if len(codes) != n:
        raise InputError("keys", f"{len(codes)} keys for {n} scores")
    if times is not None:
        tt = pd.to_datetime(pd.Series(times), utc=True)
        if len(tt) != n or tt.isna().any():
            raise InputError("times", "need one valid time per score")
        order = np.lexsort((tt.dt.as_unit("ns").astype("int64").to_numpy(), codes))
    else:
        order = np.argsort(codes, kind="stable")
    return order, codes[order]


def _rolling_rows(c, v, window, *, include_current=True):
    """Rolling (sum, count) over the last ``window`` rows of each group, on rows
    already sorted by group then time. NaN values are skipped."""
    n = len(v)
    ok = np.isfinite(v)
    cs = np.r_[0.0, np.cumsum(np.where(ok, v, 0.0))]
    cn = np.r_[0, np.cumsum(ok)]
    i = np.arange(n)
    gstart = np.r_[0, np.flatnonzero(c[1:] != c[:-1]) + 1] if n else np.empty(0, dtype=np.int64)
    first = np.repeat(gstart, np.diff(np.r_[gstart, n]))
    hi = i + 1 if include_current else i
    lo = np.maximum(first, hi - int(window))
    return cs[hi] - cs[lo], cn[hi] - cn[lo]


def recent_deviation(z, keys=None, times=None, *, windows: tuple[int, ...] = (6, 36),
                     spread_window: int = 36, spread: bool = True) -> np.ndarray:
    """Multi-scale deviation from per-row robust z scores (rows up to and including each row only).

    For each row: the maximum of the point ``|z|``, of ``|mean z| * sqrt(m)``
    over the last ``m`` rows for each ``m`` in ``windows`` (a level shift or
    drift too small for one row but lasting is as unlikely as a big spike),
    and, when ``spread``, of a spread-change term: the mean of ``z**2`` over
    the last ``spread_window`` rows as the z of a chi-square,
    ``(sum z**2 - m) / sqrt(2 m)``, large when recent residuals are much
    wider than the baseline's spread (its MAD). NaN z count as 0 (not
    scored). Rows are taken per ``keys`` (one series per key) in ``times``
    order (default: the given order). Returns a float array >= 0 in the
    input order, in units of z. Vectorised (cumulative sums).
    """
    z = np.nan_to_num(np.asarray(z, dtype=float), nan=0.0, posinf=1e6, neginf=-1e6)
    n = len(z)
    order, c = _group_order(n, keys, times)
    zs = z[order]
    best = np.abs(zs)
    for m in windows:
        sm, cnt = _rolling_rows(c, zs, m)
        best = np.fmax(best, np.abs(sm) / np.sqrt(np.maximum(cnt, 1)))
    if spread and spread_window > 1:
        q, cnt = _rolling_rows(c, np.minimum(zs * zs, 1e6), spread_window)
        cnt = np.maximum(cnt, 1)
        best = np.fmax(best, (q - cnt) / np.sqrt(2.0 * cnt))
    out = np.empty(n)
    out[order] = best
    return out


def anomaly_likelihood(scores, keys=None, times=None, *, long_window: int = 8640, short_window: int = 10,
                       learning: int = 300, min_mean: float = 0.03, min_var: float = 0.0003) -> np.ndarray:
    """Anomaly likelihood of per-row anomaly scores, as in Numenta's HTM pipeline.

    scores: per-row anomaly scores in [0, 1] (e.g. ``score(...)["anomaly"]``
        or ``d / (d + k)`` of :func:`recent_deviation`).
    keys / times: series keys (one series per key) and row times (default:
        the given order).

    For each row the recent average of the last ``short_window`` scores
    (including the row) is compared with the distribution (mean, standard
    deviation; mean floored by ``min_mean``, variance by ``min_var``) of such
    averages over the previous ``long_window`` rows (strictly before the
    row): likelihood = 1 - Q((recent - mean) / std), Q the upper normal
    tail. So each series gets its own effective threshold: a noisy series
    whose scores are always high is not alarming, a quiet one that moves is.
    Rows with fewer than ``learning`` prior rows get 0.5. Streaming: a row's
    value depends only on rows up to and including it. Returns floats in
    [0, 1] in the input order.
    """
    from scipy.special import ndtr

    s = np.clip(np.nan_to_num(np.asarray(scores, dtype=float), nan=0.0), 0.0, 1.0)
    n = len(s)
    if short_window < 1 or long_window < 2:
        raise InputError("anomaly_likelihood", "short_window must be >= 1 and long_window >= 2")
    order, c = _group_order(n, keys, times)
    ss = s[order]
    sm, cnt = _rolling_rows(c, ss, short_window)
    avg = sm / np.maximum(cnt, 1)
    m1, k = _rolling_rows(c, avg, long_window, include_current=False)
    m2, _ = _rolling_rows(c, avg * avg, long_window, include_current=False)
    kk = np.maximum(k, 1)
    mean = m1 / kk
    var = np.maximum(m2 / kk - mean * mean, 0.0)
    mean = np.maximum(mean, min_mean)
    var = np.maximum(var, min_var)
    lik = ndtr((avg - mean) / np.sqrt(var))
    lik = np.where(k >= learning, lik, 0.5)
    out = np.empty(n)
    out[order] = lik
    return out


def _window_histograms(v: np.ndarray, window: int, bins: int, chunk: int = 65536) -> np.ndarray:
    """Counts (n, bins) of the last ``window`` values of ``v`` in ``bins`` equal
    bins spanning the minimum..maximum of all values up to each row (the
    running range: no look-ahead). Rows before the first full window or with
    a zero range get -1. Vectorised over rows (chunks of ``chunk`` rows)."""
    n = len(v)
    out = np.full((n, bins), -1, dtype=np.int64)
    if n < window:
        return out
    lo, hi = np.minimum.accumulate(v), np.maximum.accumulate(v)
    sw = np.lib.stride_tricks.sliding_window_view(v, window)  # row i + window - 1 ends window i
    for a0 in range(0, len(sw), chunk):
        a1 = min(len(sw), a0 + chunk)
        r = np.arange(a0, a1) + window - 1
        ok = hi[r] > lo[r]
        step = np.where(ok, (hi[r] - lo[r]) / bins, 1.0)
        code = np.clip(((sw[a0:a1] - lo[r, None]) / step[:, None]).astype(np.int64), 0, bins - 1)
        cnt = np.stack([(code == k).sum(axis=1) for k in range(bins)], axis=1)
        out[r[ok]] = cnt[ok]
    return out


def distribution_change(values, keys=None, times=None, *, window: int = 52, bins: int = 5,
                        alpha: float = 1e-3, prior: float = 0.5) -> np.ndarray:
    """Rows where the recent distribution of a series is new: streaming relative entropy.

    The multiple-hypothesis relative-entropy test of Wang et al. (2011,
    "Statistical techniques for online anomaly detection in data centers"),
    the method of NAB's "relative entropy" detector, made causal: for every
    row, the histogram of the last ``window`` values in ``bins`` equal bins
    over the range seen so far (rows up to and including the row) is
    compared with every stored histogram (a "hypothesis" of normal
    behaviour). It agrees with one when ``2 * window * KL(recent || stored)``
    is below the chi-square quantile ``1 - alpha`` with ``bins - 1`` degrees
    of freedom. Stored histograms are smoothed with ``prior`` pseudo-counts
    per bin (0.5: the Krichevsky-Trofimov / Jeffreys estimate), so a single
    value in a bin never seen in a stored window does not make the window
    new by itself (without it, KL is infinite). A histogram that agrees with none is stored and its row
    scores 1 (a distribution not seen before: a level shift, a new rhythm, a
    stuck sensor, a spike cluster); all other rows score 0. The first full
    window is the first hypothesis. Recurring behaviour (a daily cycle, a
    regime seen before) is never new twice.

    values: per-row numbers (NaN rows are skipped and score 0); keys /
    times: series keys and row times (default: one series in the given
    order). Returns floats 0/1 in the input order.
    """
    from scipy.stats import chi2

    if window < 2 or bins < 2:
        raise InputError("distribution_change", "window and bins must be >= 2")
    x = np.asarray(values, dtype=float)
    n = len(x)
    order, c = _group_order(n, keys, times)
    xs = x[order]
    res = np.zeros(n)
    limit = chi2.isf(alpha, bins - 1) / (2.0 * window)  # on KL
    gstart = np.r_[0, np.flatnonzero(c[1:] != c[:-1]) + 1] if n else np.empty(0, dtype=np.int64)
    for g0, g1 in zip(gstart, np.r_[gstart[1:], n]):
        rows = np.arange(g0, g1)
        rows = rows[np.isfinite(xs[rows])]
        hist = _window_histograms(xs[rows], window, bins)
        full = hist[:, 0] >= 0
        if not full.any():
            continue
        # Identical histograms always give the same answer once seen (the
        # stored set only grows), so test each distinct histogram once, in
        # order of first appearance. A distinct histogram agreeing with the
        # stored set stays agreed, so all are tested at once against each
        # new hypothesis; only the first one agreeing with none becomes the
        # next hypothesis (exactly the one-by-one order).
        h = hist[full]
        uniq, first = np.unique(h, axis=0, return_index=True)
        seq = np.argsort(first)
        uniq, first = uniq[seq], first[seq]
        p = uniq / window
        q = (uniq + prior) / (window + bins * prior)
        best = np.full(len(uniq), np.inf)  # least KL to a stored hypothesis
        alive = np.ones(len(uniq), dtype=bool)  # not settled yet
        new_u = np.zeros(len(uniq), dtype=bool)
        j = 0  # the first window is the first hypothesis (not new)
        while True:
            alive[j] = False
            live = np.flatnonzero(alive)
            if len(live) == 0:
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                kl = np.where(p[live] > 0, p[live] * np.log(p[live] / q[j]), 0.0).sum(axis=1)
            best[live] = np.fmin(best[live], np.where(np.isnan(kl), np.inf, kl))
            alive[live[best[live] < limit]] = False
            live = np.flatnonzero(alive)
            if len(live) == 0:
                break
            j = live[0]
            new_u[j] = True
        is_new = np.zeros(len(h), dtype=bool)
        is_new[first[new_u]] = True  # only the row where it first appears
        res[rows[full][is_new]] = 1.0
    out = np.empty(n)
    out[order] = res
    return out


def streaming_score(values, times, keys=None, *, coverage=None, suppress: str | pd.Timedelta | None = "1D",
                    novelty: bool = True, novelty_window: int = 52, novelty_bins: int = 5,
                    novelty_alpha: float = 1e-3, novelty_prior: float = 0.5, **options) -> np.ndarray:
    """One streaming anomaly score in [0, 1] per row: point deviations and distribution changes.

    values: per-row counts or amounts; times: their times (UTC; naive =
    UTC); keys: series keys (default one series); coverage: optional
    per-row coverage (0..1), as in :func:`score`. ``options`` go to
    :func:`score` (``window``, ``season``, ``z_threshold``, ...).

    Two parts, each using only rows up to and including the row:

    - point: the robust z of :func:`score` (prior-window median and MAD,
      season, level shifts) as ``|z| / (|z| + z_threshold)``, kept only at
      onsets: a row scores 0 unless it beats every point score of the
      ``suppress`` period before it in its series (one alarm per excursion,
      not one per row);
    - novelty (when ``novelty``): 1 where :func:`distribution_change` finds
      that the last ``novelty_window`` valid values have a distribution
      never seen before in the series (test level ``novelty_alpha``,
      pseudo-counts ``novelty_prior``), which
      catches changes of shape or rhythm that no single row reveals.

    The score is the larger of the two; rows that :func:`score` does not
    alert (too little history, coverage below ``min_coverage``) have point
    score 0 and do not enter the novelty windows. Returns floats in the
    input order.
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    t = pd.to_datetime(times.reset_index(drop=True) if isinstance(times, pd.Series) else pd.Series(times),
                       utc=True)
    if len(t) != n or t.isna().any():
        raise InputError("times", "need one valid time per value")
    frame = pd.DataFrame({"acquired": t, "count": x, "_row": np.arange(n)})
    by = []
    if keys is not None:
        k = pd.Series(np.asarray(keys)).factorize()[0]
        if len(k) != n:
            raise InputError("keys", f"{len(k)} keys for {n} values")
        frame["_key"] = k
        by = ["_key"]
    cov = None
    if coverage is not None:
        frame["coverage"] = np.broadcast_to(np.asarray(coverage, dtype=float), (n,))
        cov = "coverage"
    options = dict(options)
    options.setdefault("rise", False)  # not part of the streaming score; skip its cost
    for name in ("time", "value", "by"):
        options.pop(name, None)
    zt = float(options.get("z_threshold", 3.5))
    sc = score(frame, time="acquired", value="count", coverage=cov, by=by, **options)
    rows = sc["_row"].to_numpy()
    z = np.where(sc["alertable"].to_numpy(), np.abs(np.nan_to_num(sc["z"].to_numpy(dtype=float))), 0.0)
    a = z / (z + zt) if zt > 0 else (z > 0).astype(float)
    if suppress is not None and n:
        codes = sc["_key"].to_numpy() if by else np.zeros(n, dtype=np.int64)
        ts = sc["acquired"].dt.as_unit("ns").astype("int64").to_numpy() // 10**9
        ts = ts - ts.min()
        prev = _roll(codes, ts, a, pd.Timedelta(suppress).total_seconds(), "max")
        a = np.where(a > np.nan_to_num(prev, nan=0.0), a, 0.0)
    point = np.empty(n)
    point[rows] = a
    if not novelty or n == 0:
        return point
    valid = np.empty(n, dtype=bool)
    valid[rows] = sc["valid"].to_numpy()
    codes = frame["_key"].to_numpy() if by else None
    nov = distribution_change(np.where(valid, x, np.nan), codes, t, window=novelty_window,
                              bins=novelty_bins, alpha=novelty_alpha, prior=novelty_prior)
    return np.fmax(point, nov)
