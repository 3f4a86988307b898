"""Scenarios: object counts over time per AOI, as data (JSON or YAML).

A scenario file holds, per AOI id, keyframes ``{"date": "YYYY-MM-DD",
<type>: expected count, ...}``; between keyframes counts are linearly
interpolated, before the first / after the last they are held. Rail
types: gondola, tank, boxcar, flat, locomotive. Port types: small,
medium, large (size classes) and ``shuttle``: the expected number of
ships of ``shuttle_length_m`` = [min, max] metres in port (its whole part
is always there, its fraction is the probability of one more; values in
0..1 are the probability that one is in port). A keyframe may carry a
``"note"`` (text: where its numbers come from). ``noise`` is the relative
spread of a scene's count around the expected value.
AOIs not listed use ``defaults[kind]``. The bundled default follows
public reporting on the Tumangang-Khasan crossing and Rajin/Dunay
(``monitor/synth/scenarios/default.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from pathlib import Path

import numpy as np

from monitor.errors import InputError

RAIL_TYPES = ("gondola", "tank", "boxcar", "flat", "locomotive")
#: keyframe keys that hold text, not counts
_TEXT_KEYS = ("date", "note")
PORT_TYPES = ("small", "medium", "large", "very_large")


def _d(x) -> date:
    if isinstance(x, datetime):
        return x.date()
    if isinstance(x, date):
        return x
    return date.fromisoformat(str(x)[:10])


@dataclass
class Scenario:
    """Counts over time. ``aois[id] = {"kind", "noise", "keyframes": [...]}``."""

    name: str
    aois: dict
    defaults: dict = field(default_factory=dict)
    revisit_days: float = 5.0
    cloud: dict = field(default_factory=dict)
    source: str | None = None

    def entry(self, aoi_id: str, kind: str) -> dict:
        e = self.aois.get(aoi_id) or self.defaults.get(kind)
        if e is None:
            raise InputError(self.source or self.name, f"no entry for AOI {aoi_id!r} and no default for kind {kind!r}")
        return e

    def expected(self, aoi_id: str, kind: str, when) -> dict[str, float]:
        """Expected counts by type on ``when`` (interpolated keyframes)."""
        e = self.entry(aoi_id, kind)
        kf = sorted(e["keyframes"], key=lambda k: k["date"])
        t = _d(when).toordinal()
        ts = np.array([_d(k["date"]).toordinal() for k in kf], float)
        keys = sorted({k for f in kf for k in f if k not in _TEXT_KEYS})
        return {k: float(np.interp(t, ts, [float(f.get(k, 0)) for f in kf])) for k in keys}

    def draw(self, aoi_id: str, kind: str, when, rng) -> dict:
        """Counts for one scene: expected values with multiplicative noise, rounded.

        For ports the result may hold ``"lengths"``: the shuttle ships' lengths (m).
        """
        e = self.entry(aoi_id, kind)
        exp = self.expected(aoi_id, kind, when)
        noise = float(e.get("noise", 0.3))
        out: dict = {}
        for k, v in exp.items():
            if k == "shuttle":
                continue
            lam = max(v, 0.0) * float(np.exp(rng.normal(0, noise) - noise ** 2 / 2))
            out[k] = int(rng.poisson(lam)) if lam > 0 else 0
        if kind == "port":
            s = max(exp.get("shuttle", 0.0), 0.0)
            n = int(s) + int(rng.random() < s - int(s))
            if n:
                lo, hi = e.get("shuttle_length_m", [100, 135])
                out["lengths"] = [float(rng.uniform(lo, hi)) for _ in range(n)]
        return out


def default_scenario() -> Scenario:
    """The bundled scenario (public reporting 2018-2026)."""
    p = resources.files("monitor.synth") / "scenarios" / "default.json"
    return _from_doc(json.loads(p.read_text(encoding="utf-8")), str(p))


def load_scenario(ref=None) -> Scenario:
    """A :class:`Scenario` from a JSON/YAML file, a dict, or ``None`` (the default)."""
    if ref is None or ref == "default":
        return default_scenario()
    if isinstance(ref, Scenario):
        return ref
    if isinstance(ref, dict):
        return _from_doc(ref, "<scenario>")
    p = Path(ref)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(p, f"cannot read scenario file ({e.strerror or e})") from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml  # optional
            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except ImportError:
        raise InputError(p, "YAML scenarios need PyYAML; use JSON") from None
    except Exception as e:
        raise InputError(p, f"not a valid scenario file ({e.__class__.__name__}: {e})") from None
    return _from_doc(doc, str(p))


def _from_doc(doc, src: str) -> Scenario:
    if not isinstance(doc, dict) or not isinstance(doc.get("aois", {}), dict):
        raise InputError(src, "a scenario is an object with an 'aois' object")
    for aid, e in list(doc.get("aois", {}).items()) + list(doc.get("defaults", {}).items()):
        kf = e.get("keyframes") if isinstance(e, dict) else None
        if not kf or not isinstance(kf, list):
            raise InputError(src, f"AOI {aid!r}: needs a non-empty 'keyframes' list")
        for i, f in enumerate(kf):
            try:
                _d(f["date"])
            except Exception:
                raise InputError(src, f"AOI {aid!r} keyframe {i}: 'date' must be YYYY-MM-DD") from None
            for k, v in f.items():
                if k == "note":
                    if not isinstance(v, str):
                        raise InputError(src, f"AOI {aid!r} keyframe {i}: 'note' must be text")
                elif k != "date" and (not isinstance(v, (int, float)) or v < 0):
                    raise InputError(src, f"AOI {aid!r} keyframe {i}: {k!r} must be a non-negative number")
    return Scenario(name=str(doc.get("name", Path(src).stem)), aois=doc.get("aois", {}), defaults=doc.get("defaults", {}),
                    revisit_days=float(doc.get("revisit_days", 5)), cloud=doc.get("cloud", {}), source=src)
