"""Turning baseline scores into alerts in plain words, storing and delivering them.

    new = raise_alerts(store)            # score the store's observations, keep new alerts
    for a in new: print(a.message)
    deliver_webhook(new, "https://hooks.example.org/monitor", store=store)

A message reads like an analyst's note:
"Tumangang: 73 railcars on 2023-10-05, 4.3x the 5-year median (17), the
highest since records began (2018-01)", or, for a rise sustained over
several scenes none of which is a spike by itself, "Port Dunay: 6 vessels
in the 4 scenes 2023-08-30..2024-02-16 (1.5 a scene), against 0.14 a scene
in the 5 years before: a sustained rise".
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from monitor.baseline import YEAR_S, score
from monitor.errors import InputError

_PLURAL = {"railcar": "railcars", "vessel": "vessels", "ship": "ships", "locomotive": "locomotives",
           # the size-class series of monitor.store.SIZE_CLASS_SERIES
           "vessel_large": "ships of 100 m or more"}


@dataclass
class Alert:
    """One alert about one observation.

    kind: ``spike``, ``record``, ``drop``, ``rise`` (a sustained rise) or
    a combination joined by ``+`` (``spike+record``, ``spike+rise``).
    acquired: the observation's time (UTC). count: the observed count.
    score: the robust z of the observation. message: the plain-words text.
    """

    aoi_id: str
    cls: str
    kind: str
    acquired: pd.Timestamp
    count: float
    score: float
    message: str
    scene_id: str | None = None
    observation_id: int | None = None
    id: int | None = None
    state: str = "new"
    delivered: Any = None

    def to_dict(self) -> dict:
        """JSON-ready fields (times as ISO-8601 UTC)."""
        d = asdict(self)
        d["class"] = d.pop("cls")
        d["acquired"] = _iso(self.acquired)
        d["delivered"] = _iso(self.delivered) if self.delivered is not None else None
        for k in ("count", "score"):
            d[k] = None if d[k] is None or not np.isfinite(d[k]) else float(d[k])
        return d


def _iso(t: Any) -> str | None:
    if t is None or (not isinstance(t, str) and pd.isna(t)):
        return None
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def aoi_name(aoi_id: str) -> str:
    """The AOI's display name (bundled AOIs), else the id."""
    try:
        from monitor.aoi import load_aoi

        return load_aoi(aoi_id).name or aoi_id
    except Exception:
        return aoi_id


def _fmt_count(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 1e-9 or abs(x) >= 10 else f"{x:.1f}"


def plural(cls: str) -> str:
    """The words for several objects of a class: ``railcars``, ``ships of 100 m or more``."""
    cls = str(cls)
    return _PLURAL.get(cls, cls if cls.endswith("s") else cls + "s")


def _what(row: Any) -> str:
    return plural(row.get("class", "object"))


def describe_rise(row: Any, *, name: str | None = None, window_years: float = 5.0) -> str:
    """The plain-words sentence of a sustained rise (a row of :func:`monitor.baseline.score` with ``rise``).

    "Port Dunay: 6 vessels in the 4 scenes 2023-08-30..2024-02-16 (1.5 a
    scene), against 0.14 a scene in the 5 years before: a sustained rise".
    The reference is "in the N years before" when it spans the whole window,
    else "since" its first observation (a young series or a new regime).
    """
    n = int(row.get("rise_n", 0) or 0)
    total = float(row.get("rise_count", np.nan))
    exp = float(row.get("rise_expected", np.nan))
    t = pd.Timestamp(row["acquired"])
    start = row.get("rise_start")
    start = t if start is None or pd.isna(start) else pd.Timestamp(start)
    ref = row.get("rise_ref_start")
    if ref is not None and pd.notna(ref) and (start - pd.Timestamp(ref)).total_seconds() < (window_years - 0.05) * YEAR_S:
        before = f"since {pd.Timestamp(ref):%Y-%m}"
    else:
        before = f"in the {window_years:g} years before"
    per = total / n if n else np.nan
    per_ref = exp / n if n else np.nan
    ref_txt = f"{per_ref:.2f}" if per_ref < 1 else _fmt_count(round(per_ref, 1))
    return (f"{name or row.get('aoi_id')}: {_fmt_count(total)} {_what(row)} in the {n} scenes "
            f"{start:%Y-%m-%d}..{t:%Y-%m-%d} ({per:.1f} a scene), against {ref_txt} a scene {before}: "
            "a sustained rise")


def describe(row: Any, *, name: str | None = None, window_years: float = 5.0) -> str:
    """The plain-words message of one scored observation (a row of :func:`monitor.baseline.score`).

    A spike, record or drop is described by the observation itself; a
    sustained rise (``rise``) by :func:`describe_rise`, appended after "; "
    when the observation is also a spike or record."""
    point = any(bool(row.get(k)) for k in ("spike", "record", "drop"))
    if bool(row.get("rise")):
        rise_txt = describe_rise(row, name=name, window_years=window_years)
        if not point:
            return rise_txt
        return describe({**dict(row), "rise": False}, name=name, window_years=window_years) + "; " + \
            rise_txt.split(": ", 1)[1]
    what = _what(row)
    t = pd.Timestamp(row["acquired"])
    count = float(row["count"])
    cov = float(row.get("coverage", 1.0) if pd.notna(row.get("coverage", 1.0)) else 1.0)
    med = float(row["median"]) * min(cov, 1.0)
    first = row.get("first_time")
    span_years = (t - first).total_seconds() / YEAR_S if first is not None and pd.notna(first) else 0.0
    if span_years >= window_years - 0.05:
        base = f"the {window_years:g}-year median"
    else:
        base = f"the median since {pd.Timestamp(first):%Y-%m}" if pd.notna(first) else "the median"
    parts = [f"{name or row.get('aoi_id')}: {_fmt_count(count)} {what} on {t:%Y-%m-%d}"]
    if cov < 0.995:
        parts[0] += f" ({cov:.0%} covered)"
    if med > 0:
        parts.append(f"{count / med:.1f}x {base} ({_fmt_count(med)})")
    else:
        parts.append(f"against {base} of {_fmt_count(med)}")
    if bool(row.get("record")):
        since = row.get("record_since")
        if since is None or pd.isna(since):
            parts.append(f"the highest since records began ({pd.Timestamp(first):%Y-%m})")
        else:
            parts.append(f"the highest since {pd.Timestamp(since):%Y-%m-%d}")
    elif bool(row.get("drop")):
        parts.append(f"an unusual drop (z = {float(row['z']):.1f})")
    else:
        parts.append(f"an unusual spike (z = {float(row['z']):.1f})")
    return ", ".join(parts)


def alerts_from_scores(scored: pd.DataFrame, *, window_years: float = 5.0, names: dict | None = None,
                       since: Any = None) -> list[Alert]:
    """One :class:`Alert` per observation flagged spike, record, drop or rise (a sustained rise's onset)."""
    flag = scored["spike"] | scored["record"] | scored.get("drop", False) | scored.get("rise", False)
    rows = scored[flag]
    if since is not None:
        s = pd.Timestamp(since)
        s = s.tz_localize("UTC") if s.tzinfo is None else s
        rows = rows[rows["acquired"] >= s]
    names = dict(names or {})
    out = []
    for _, r in rows.iterrows():
        aoi = str(r.get("aoi_id", ""))
        if aoi not in names:
            names[aoi] = aoi_name(aoi)
        kinds = [k for k in ("spike", "record", "drop", "rise") if k in r and bool(r[k])]
        oid = r.get("id") if "id" in r else None
        out.append(Alert(aoi_id=aoi, cls=str(r.get("class", "")), kind="+".join(kinds),
                         acquired=pd.Timestamp(r["acquired"]), count=float(r["count"]), score=float(r["z"]),
                         message=describe(r, name=names[aoi], window_years=window_years),
                         scene_id=None if pd.isna(r.get("scene_id")) else str(r.get("scene_id")),
                         observation_id=None if oid is None or pd.isna(oid) else int(oid)))
    return out


def raise_alerts(store, *, aoi: str | Sequence[str] | None = None, cls: str | Sequence[str] | None = None,
                 since: Any = None, window_years: float = 5.0, **score_options) -> list[Alert]:
    """Score the store's observations and store the alerts not stored before.

    The whole history is scored (no look-ahead: each observation only sees
    its past); ``since`` limits which observations may raise alerts.
    Returns the new alerts (with their ids); re-running raises none again.
    """
    obs = store.observations(aoi=aoi, cls=cls)
    if obs.empty:
        return []
    scored = score(obs, window_years=window_years, **score_options)
    found = alerts_from_scores(scored, window_years=window_years, since=since)
    ids = store.write_alerts(found)
    if not ids:
        return []
    table = store.alerts()
    table = table[table["id"].isin(ids)]
    return [_row_to_alert(r) for _, r in table.iterrows()]


def _row_to_alert(r) -> Alert:
    return Alert(aoi_id=r["aoi_id"], cls=r["class"], kind=r["kind"], acquired=r["acquired"], count=r["count"],
                 score=r["score"], message=r["message"], scene_id=r["scene_id"] or None,
                 observation_id=None if pd.isna(r["observation_id"]) else int(r["observation_id"]),
                 id=int(r["id"]), state=r["state"], delivered=None if pd.isna(r["delivered"]) else r["delivered"])


def stored_alerts(store, *, aoi=None, cls=None, since=None, new_only: bool = False) -> list[Alert]:
    """The store's alerts as :class:`Alert` objects, oldest first."""
    table = store.alerts(aoi=aoi, cls=cls, since=since, state="new" if new_only else None)
    return [_row_to_alert(r) for _, r in table.iterrows()]


def deliver_webhook(alerts: Iterable[Alert], url: str, *, store=None, timeout: float = 10.0) -> int:
    """POST the alerts as JSON ``{"alerts": [...]}`` to ``url``.

    On a 2xx answer the alerts' delivery time is recorded in ``store`` (when
    given). Raises :class:`InputError` naming the URL when it fails.
    Returns the number of alerts delivered.
    """
    alerts = list(alerts)
    if not alerts:
        return 0
    if not url.startswith(("http://", "https://")):
        raise InputError(url, "webhook URL must start with http:// or https://")
    body = json.dumps({"source": "monitor", "alerts": [a.to_dict() for a in alerts]}).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "monitor"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        raise InputError(url, f"webhook answered HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise InputError(url, f"webhook not reachable: {getattr(e, 'reason', e)}") from None
    if not 200 <= status < 300:
        raise InputError(url, f"webhook answered HTTP {status}")
    if store is not None:
        ids = [a.id for a in alerts if a.id is not None]
        if ids:
            store.mark_delivered(ids)
    return len(alerts)
