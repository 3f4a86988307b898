"""External series (e.g. monthly customs exports): cleaning, growth, statements.

    raw = pd.read_csv("china_exports_to_dprk_2023.csv")
    clean = clean_monthly(raw)          # time (month start, UTC), value, status
    store.write_series("cn_exports_dprk", clean, unit="USD m")
    print(report(store.series("cn_exports_dprk"), name="cn_exports_dprk", unit="USD m"))

Published monthly figures come in untidy shapes: approximate values
("~156.5"), ranges ("~200-230", taken at the midpoint), and several months
reported together ("2023-01..03" with the sum over those months, spread
evenly). Such months are marked ``derived``; figures given as they are,
``reported``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.baseline import score
from monitor.errors import InputError

_MONTH = re.compile(r"^\s*(\d{4})-(\d{1,2})(?:\s*(?:\.\.|/|–|-|to)\s*(?:(\d{4})-)?(\d{1,2}))?\s*$")
_NUM = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


def parse_value(text) -> tuple[float, bool]:
    """A number from text like ``"166"``, ``"~437"``, ``"~200-230"``, ``"1,240"``.

    Returns (value, approximate): a range gives its midpoint; ``~``, a range
    or a trailing ``?`` make the value approximate. NaN when no number is found.
    """
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return float("nan"), False
    if isinstance(text, (int, float, np.number)):
        return float(text), False
    s = str(text).strip().replace("\u2009", "").replace(" ", "")
    approx = s.startswith(("~", "≈", "c.", "ca")) or s.endswith("?")
    s = s.lstrip("~≈c.a")
    m = re.match(r"^(\d+(?:\.\d+)?)[-–](\d+(?:\.\d+)?)$", s.replace(",", ""))
    if m:
        return (float(m.group(1)) + float(m.group(2))) / 2.0, True
    nums = _NUM.findall(s.replace(",", ""))
    if not nums:
        return float("nan"), approx
    return float(nums[0]), approx


def parse_months(text) -> list[pd.Timestamp]:
    """The months (month-start UTC timestamps) a period label covers:
    ``"2023-04"`` -> one month, ``"2023-01..03"`` -> January to March."""
    s = str(text).strip()
    m = _MONTH.match(s)
    if not m:
        try:
            t = pd.Timestamp(s)
        except (ValueError, TypeError):
            raise InputError(text, "not a month (expected YYYY-MM or YYYY-MM..MM)") from None
        return [pd.Timestamp(year=t.year, month=t.month, day=1, tz="UTC")]
    y1, m1 = int(m.group(1)), int(m.group(2))
    if m.group(4) is None:
        return [pd.Timestamp(year=y1, month=m1, day=1, tz="UTC")]
    y2 = int(m.group(3)) if m.group(3) else y1
    m2 = int(m.group(4))
    start = pd.Timestamp(year=y1, month=m1, day=1, tz="UTC")
    end = pd.Timestamp(year=y2, month=m2, day=1, tz="UTC")
    if end < start:
        raise InputError(text, "period ends before it starts")
    return list(pd.date_range(start, end, freq="MS"))


def clean_monthly(raw: pd.DataFrame | str | Path, *, time_col: str | None = None, value_col: str | None = None,
                  status_col: str | None = "status") -> pd.DataFrame:
    """Clean a table of monthly figures into one row per month.

    raw: a frame or a CSV path; the first column is the period (``time_col``)
        and the second the value (``value_col``) unless named.
    A multi-month period's value is a total, spread evenly over its months.
    Returns columns time (month start, UTC), value (float), status
    (``reported`` or ``derived``), sorted by time; a month given twice
    keeps the reported figure over a derived one.
    """
    if not isinstance(raw, pd.DataFrame):
        path = Path(raw)
        try:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
            raise InputError(path, f"cannot read CSV: {e}") from None
        source = str(path)
    else:
        source = "series"
    if raw.shape[1] < 2:
        raise InputError(source, "need at least two columns: time, value")
    tcol = time_col or raw.columns[0]
    vcol = value_col or raw.columns[1]
    rows = []
    for i, r in raw.iterrows():
        label = r[tcol]
        if label is None or str(label).strip() == "":
            continue
        try:
            months = parse_months(label)
        except InputError as e:
            raise InputError(source, f"row {i + 2}: {e}") from None
        value, approx = parse_value(r[vcol])
        if np.isnan(value):
            continue
        given = str(r[status_col]).strip().lower() if status_col and status_col in raw.columns else ""
        derived = approx or len(months) > 1 or given.startswith(("derived", "estimate", "est"))
        for m in months:
            rows.append((m, value / len(months), "derived" if derived else "reported"))
    if not rows:
        raise InputError(source, "no usable rows (time, value)")
    df = pd.DataFrame(rows, columns=["time", "value", "status"])
    df["rank"] = (df["status"] == "reported").astype(int)
    df = df.sort_values(["time", "rank"]).drop_duplicates("time", keep="last").drop(columns="rank")
    return df.reset_index(drop=True)


def growth(series: pd.DataFrame) -> pd.DataFrame:
    """Month-on-month and year-on-year growth (percent) and year-to-date totals.

    series: columns time, value (monthly). Adds ``mom_pct``, ``yoy_pct``
    (NaN where the earlier month is missing), ``ytd`` (sum of the year's
    months so far) and ``ytd_months`` (how many months it sums).
    """
    df = series[["time", "value"] + [c for c in ("status", "unit") if c in series.columns]].copy()
    df["time"] = pd.to_datetime(df["time"], utc=True)
    df = df.sort_values("time").reset_index(drop=True)
    by_month = df.set_index(df["time"].dt.tz_convert(None).dt.to_period("M").astype(str))["value"]

    def shifted(months: int) -> np.ndarray:
        prev = (df["time"].dt.tz_convert(None).dt.to_period("M") - months).astype(str)
        return by_month.reindex(prev).to_numpy(dtype=float)

    prev1, prev12 = shifted(1), shifted(12)
    v = df["value"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        df["mom_pct"] = np.where(prev1 > 0, 100.0 * (v / prev1 - 1.0), np.nan)
        df["yoy_pct"] = np.where(prev12 > 0, 100.0 * (v / prev12 - 1.0), np.nan)
    year = df["time"].dt.year
    df["ytd"] = df.groupby(year)["value"].cumsum()
    df["ytd_months"] = df.groupby(year).cumcount() + 1
    return df


def statements(series: pd.DataFrame, *, name: str, unit: str | None = None, z_threshold: float = 3.5,
               min_history: int = 6) -> list[str]:
    """Plain-words statements about a monthly series:

    - "fastest month-on-month growth since ..." for a month whose growth is
      higher than every earlier month's since the named month (or since
      the series began), when at least ``min_history`` earlier growths exist;
    - "unusual" months flagged by the same robust spike scoring as the
      counts (:func:`monitor.baseline.score`, 5-year window, no look-ahead).
    """
    g = growth(series)
    u = f" {unit}" if unit else ""
    out: list[str] = []
    mom = g["mom_pct"].to_numpy(dtype=float)
    times = g["time"]
    for i in range(len(g)):
        if not np.isfinite(mom[i]):
            continue
        prior = np.flatnonzero(np.isfinite(mom[:i]))
        if len(prior) < min_history:
            continue
        higher = prior[mom[prior] >= mom[i]]
        if len(higher) == len(prior):
            continue
        if len(higher) == 0:
            since = f"the series began ({times.iloc[prior[0]]:%Y-%m})"
        else:
            j = higher[-1]
            if i - j < 6:  # only notable when it beats at least half a year
                continue
            since = f"{times.iloc[j]:%Y-%m} ({mom[j]:+.1f} %)"
        out.append(f"{name}: {g['value'].iloc[i]:.1f}{u} in {times.iloc[i]:%Y-%m}, {mom[i]:+.1f} % on the month,"
                   f" the fastest growth since {since}")
    sc = _score_amounts(g, z_threshold=z_threshold, min_history=min_history)
    for _, r in sc.iterrows():
        word = "high" if r["z"] > 0 else "low"
        out.append(f"{name}: {r['count']:.1f}{u} in {r['acquired']:%Y-%m} is unusually {word},"
                   f" {r['ratio']:.1f}x the median of the past {int(r['n_history'])} months (z = {r['z']:.1f})")
    return out


def _score_amounts(g: pd.DataFrame, *, z_threshold: float, min_history: int) -> pd.DataFrame:
    """Spike and drop months by the baseline scorer; amounts are not counts,
    so without the Poisson floor."""
    obs = pd.DataFrame({"acquired": g["time"], "count": g["value"].to_numpy(dtype=float), "coverage": 1.0})
    sc = score(obs, z_threshold=z_threshold, season="month", min_history=min_history, min_spread=1e-9,
               poisson_floor=False, drop=True, by=[])
    return sc[sc["spike"] | sc["drop"]]


def report(series: pd.DataFrame, *, name: str, unit: str | None = None) -> str:
    """A text table of the series with growth and YTD, followed by the statements."""
    g = growth(series)
    u = unit or (series["unit"].dropna().iloc[0] if "unit" in series.columns and series["unit"].notna().any()
                 else "")
    lines = [f"{name} ({u})" if u else name,
             f"{'month':8} {'value':>10} {'m/m %':>8} {'y/y %':>8} {'YTD':>10}  status"]
    for _, r in g.iterrows():
        def pct(x):
            return f"{x:+8.1f}" if np.isfinite(x) else f"{'':>8}"

        st = r.get("status") or ""
        lines.append(f"{r['time']:%Y-%m} {r['value']:>10.1f} {pct(r['mom_pct'])} {pct(r['yoy_pct'])}"
                     f" {r['ytd']:>10.1f}  {st if st and st != 'None' else ''}")
    st = statements(series, name=name, unit=u)
    if st:
        lines.append("")
        lines += st
    return "\n".join(lines)
