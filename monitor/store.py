"""The embedded time-series store: one SQLite file (WAL mode).

    store = Store("monitor.db")                 # or Store() -> $MONITOR_STORE / ./monitor.db
    if not store.is_processed(scene.id, "tumangang", "railcars", "1.0"):
        store.write_result(scene, "tumangang", results)   # one transaction
    obs = store.observations(aoi="tumangang", cls="railcar")  # pandas DataFrame
    det = store.detections(aoi="tumangang")                   # GeoDataFrame, EPSG:4326
    store.export("obs.parquet", table="observations")

Tables (schema version :data:`SCHEMA_VERSION`, migrations in :data:`MIGRATIONS`,
the version kept in ``PRAGMA user_version``):

- ``scenes``: id, path, acquired (ISO-8601 UTC), sensor, gsd_m, properties JSON.
- ``observations``: one count of one class in one AOI from one scene by one
  detector version: count, count_lo/count_hi (interval), coverage 0..1, gsd_m
  (metres), sensor, acquired (UTC), detector, version, created (UTC).
  Unique on (scene_id, aoi_id, class, detector, version): writing the same
  key again replaces the row (its id is kept) and its detections. A
  detector that reports counts by size class (``extras["count_by_size"]``,
  the vessel detectors) also gets one observation per size class named in
  :data:`SIZE_CLASS_SERIES` (``vessel_large``: ships of 100 m or more), so
  the baseline and the alerts follow the big ships on their own.
- ``detections``: the objects of an observation: class, score 0..1,
  length_m, width_m, properties JSON, geometry as WKB in WGS84 (lon, lat).
- ``failures``: scenes a batch could not process (scene, path, aoi, reason, time).
- ``alerts``: id, aoi, class, observation, kind (spike, record, drop, rise or
  several joined by ``+``: spike+record, spike+rise), score, message, state
  (new|acknowledged), delivered (UTC or NULL). One alert per (AOI, class,
  time, scene): a later finding about the same observation upgrades it.
- ``series``: external series (name, time, value, unit), unique on (name, time).

Writes take the write lock up front (``BEGIN IMMEDIATE``) and wait up to
``timeout`` seconds for another process that holds it, so two writers
queue instead of failing. Every problem a user can cause (a locked, corrupt
or unwritable file) is a :class:`~monitor.errors.StoreError` naming the file;
a failed write is rolled back, so nothing already stored is lost.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pandas as pd

from monitor.errors import StoreError

#: The default store file when neither a path nor $MONITOR_STORE is given.
DEFAULT_STORE = "monitor.db"

#: Seconds a connection waits for another process's lock before giving up.
DEFAULT_TIMEOUT = 30.0

_SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS scenes (
    id TEXT PRIMARY KEY,
    path TEXT,
    acquired TEXT,
    sensor TEXT,
    gsd_m REAL,
    properties TEXT
);
CREATE TABLE IF NOT EXISTS observations (
    id INTEGER PRIMARY KEY,
    scene_id TEXT NOT NULL,
    aoi_id TEXT NOT NULL,
    class TEXT NOT NULL,
    count REAL,
    count_lo REAL,
    count_hi REAL,
    coverage REAL,
    gsd_m REAL,
    sensor TEXT,
    acquired TEXT NOT NULL,
    detector TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    UNIQUE (scene_id, aoi_id, class, detector, version)
);
CREATE INDEX IF NOT EXISTS observations_series ON observations (aoi_id, class, acquired);
CREATE TABLE IF NOT EXISTS detections (
    id INTEGER PRIMARY KEY,
    observation_id INTEGER NOT NULL REFERENCES observations(id) ON DELETE CASCADE,
    class TEXT,
    score REAL,
    length_m REAL,
    width_m REAL,
    properties TEXT,
    geometry BLOB
);
CREATE INDEX IF NOT EXISTS detections_observation ON detections (observation_id);
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY,
    scene_id TEXT,
    path TEXT,
    aoi_id TEXT,
    reason TEXT NOT NULL,
    time TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    aoi_id TEXT NOT NULL,
    class TEXT NOT NULL,
    observation_id INTEGER,
    scene_id TEXT,
    acquired TEXT,
    kind TEXT NOT NULL,
    count REAL,
    score REAL,
    message TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'new',
    created TEXT NOT NULL,
    delivered TEXT,
    UNIQUE (aoi_id, class, acquired, scene_id)
);
CREATE TABLE IF NOT EXISTS series (
    name TEXT NOT NULL,
    time TEXT NOT NULL,
    value REAL,
    unit TEXT,
    status TEXT,
    PRIMARY KEY (name, time)
);
"""

#: Ordered migrations: version -> SQL script bringing the schema from version-1.
MIGRATIONS: dict[int, str] = {1: _SCHEMA_1}
SCHEMA_VERSION = max(MIGRATIONS)

#: Size classes of a detector's ``extras["count_by_size"]`` kept as their own
#: observation class: a series the baseline, the alerts and ``monitor plot
#: --class`` run on. ``large_gt100m`` (length >= 100 m, the size classes of
#: :data:`monitor.detect.vessels.SIZE_CLASSES`) -> ``vessel_large``: the
#: cargo ships that shuttle Rajin <-> Dunay/Vostochny measured 100-135 m
#: (VOA 2023-10: ~105, ~115, ~120 m; "100 m and 135 m ships at once";
#: shared/data/reference), while the fishing boats and coasters that make
#: most of a port's count stay below it. Small and medium classes are not
#: kept: their totals are the ``vessel`` series.
SIZE_CLASS_SERIES: dict[str, str] = {"large_gt100m": "vessel_large"}

TABLES = ("scenes", "observations", "detections", "failures", "alerts", "series")


def default_store_path() -> Path:
    """``$MONITOR_STORE`` if set, else ``./monitor.db``."""
    return Path(os.environ.get("MONITOR_STORE") or DEFAULT_STORE)


def utc_iso(t: Any) -> str | None:
    """ISO-8601 UTC text ``YYYY-MM-DDTHH:MM:SSZ`` (sortable) for a time-like value.

    Naive datetimes are taken as UTC. ``None``/NaT gives ``None``.
    """
    if t is None:
        return None
    ts = pd.Timestamp(t)
    if ts is pd.NaT or pd.isna(ts):
        return None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return utc_iso(datetime.now(timezone.utc))


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


class Store:
    """An observation store in one SQLite file.

    path: the file (default :func:`default_store_path`); created with its
        schema when absent.
    timeout: seconds to wait for another process's lock (busy timeout).
    """

    def __init__(self, path: str | os.PathLike | None = None, *, timeout: float = DEFAULT_TIMEOUT):
        self.path = Path(path) if path is not None else default_store_path()
        self.timeout = float(timeout)
        if self.path.is_dir():
            raise StoreError(self.path, "is a directory, not a store file")
        if not self.path.parent.exists():
            raise StoreError(self.path, f"directory {self.path.parent} does not exist")
        self._con: sqlite3.Connection | None = None
        try:
            con = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as e:
            raise self._error(e) from None
        self._con = con
        try:
            # Reading the header first: a file that is not a database fails here
            # before anything (WAL switch, schema) could write to it.
            version = con.execute("PRAGMA user_version").fetchone()[0]
            con.execute("PRAGMA schema_version").fetchone()
            con.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            con.execute("PRAGMA foreign_keys = ON")
            if version > SCHEMA_VERSION:
                raise StoreError(self.path, f"schema version {version} is newer than this monitor "
                                            f"understands ({SCHEMA_VERSION}); upgrade monitor")
            if version < SCHEMA_VERSION:
                self._migrate(version)
            mode = con.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
        except StoreError:
            self.close()
            raise
        except sqlite3.Error as e:
            self.close()
            raise self._error(e) from None

    # -- plumbing ---------------------------------------------------------
    def _error(self, e: Exception) -> StoreError:
        msg = str(e)
        low = msg.lower()
        if "locked" in low or "busy" in low:
            reason = f"database is locked by another process (waited {self.timeout:g} s); try again later"
        elif "not a database" in low or "malformed" in low or "encrypted" in low:
            reason = "not a monitor store: the file is not a SQLite database or is corrupt (left untouched)"
        elif "readonly" in low or "unable to open" in low or "disk i/o" in low or "read-only" in low:
            reason = f"cannot open or write the store ({msg}); check the path and its permissions"
        else:
            reason = f"database error: {msg}"
        return StoreError(self.path, reason)

    @property
    def con(self) -> sqlite3.Connection:
        if self._con is None:
            raise StoreError(self.path, "store is closed")
        return self._con

    def close(self) -> None:
        """Close the connection (the store can no longer be used)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): all or nothing.

        Waits up to ``timeout`` s for another writer; raises StoreError when
        the lock cannot be had or the write fails (then rolled back).
        """
        con = self.con
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise self._error(e) from None
        try:
            yield con
        except BaseException as e:
            try:
                con.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(e, sqlite3.Error):
                raise self._error(e) from None
            raise
        else:
            try:
                con.execute("COMMIT")
            except sqlite3.Error as e:
                try:
                    con.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise self._error(e) from None

    def _migrate(self, current: int) -> None:
        with self.transaction() as con:
            # Re-read under the lock: another process may have migrated meanwhile.
            current = con.execute("PRAGMA user_version").fetchone()[0]
            for v in sorted(MIGRATIONS):
                if v > current:
                    for stmt in MIGRATIONS[v].split(";"):
                        if stmt.strip():
                            con.execute(stmt)
                    con.execute(f"PRAGMA user_version = {v}")

    @property
    def schema_version(self) -> int:
        return self.con.execute("PRAGMA user_version").fetchone()[0]

    def _query(self, sql: str, params: Sequence = ()) -> pd.DataFrame:
        try:
            cur = self.con.execute(sql, params)
            cols = [d[0] for d in cur.description]
            return pd.DataFrame.from_records(cur.fetchall(), columns=cols)
        except sqlite3.Error as e:
            raise self._error(e) from None

    # -- writes -----------------------------------------------------------
    def write_scene(self, scene: Any, con: sqlite3.Connection | None = None) -> str:
        """Insert or update a scene row from a Scene (or a mapping with id, path,
        acquired, sensor, gsd_m, properties); returns the scene id."""
        sid = _get(scene, "id")
        if not sid:
            raise StoreError(_get(scene, "path", "scene"), "scene has no id")
        acquired = utc_iso(_get(scene, "acquired"))
        if acquired is None:
            raise StoreError(sid, "scene has no acquisition time; the store needs one")
        props = _get(scene, "properties") or {}
        row = (str(sid), str(_get(scene, "path") or "") or None, acquired, _get(scene, "sensor"),
               _num(_get(scene, "gsd_m")), json.dumps(props, default=str))
        sql = ("INSERT INTO scenes (id, path, acquired, sensor, gsd_m, properties) VALUES (?,?,?,?,?,?) "
               "ON CONFLICT(id) DO UPDATE SET path=excluded.path, acquired=excluded.acquired, "
               "sensor=excluded.sensor, gsd_m=excluded.gsd_m, properties=excluded.properties")
        if con is None:
            with self.transaction() as c:
                c.execute(sql, row)
        else:
            con.execute(sql, row)
        return str(sid)

    def write_result(self, scene: Any, aoi_id: str, results: Iterable[Any],
                     detections: Mapping[str, Sequence[Any]] | Sequence[Any] | None = None, *,
                     size_classes: Mapping[str, str] | None = None) -> list[int]:
        """Write one scene's observations (and detections) for one AOI atomically.

        scene: a :class:`monitor.scenes.Scene` or a mapping (id, path, acquired
            UTC, sensor, gsd_m).
        results: :class:`monitor.detect.DetectionResult` objects (or mappings
            with counts, intervals, coverage, detector, version, detections, crs);
            one observation per class in ``counts``.
        detections: optional override of the results' detections (a list, or a
            mapping class -> list); geometries in the result's ``crs``
            (reprojected to WGS84 here) or WGS84 when no crs is given.

        size_classes: size class -> observation class (default
            :data:`SIZE_CLASS_SERIES`); a result whose ``extras`` hold
            ``count_by_size`` gets one more observation per size class named
            here (same coverage, detector and version; its objects are the
            parent class's detections of that size, stored once under the
            parent). ``{}`` writes none.

        Re-writing the same (scene, AOI, class, detector, version) replaces
        the earlier observation and its detections. Returns observation ids
        (the classes of ``counts`` first, then the size classes).
        """
        size_classes = SIZE_CLASS_SERIES if size_classes is None else size_classes
        results = list(results)
        sid = str(_get(scene, "id"))
        acquired = utc_iso(_get(scene, "acquired"))
        if acquired is None:
            raise StoreError(sid, "scene has no acquisition time; the store needs one")
        sensor = _get(scene, "sensor")
        scene_gsd = _num(_get(scene, "gsd_m"))
        created = _now()
        ids: list[int] = []
        rows_det: list[tuple] = []
        with self.transaction() as con:
            self.write_scene(scene, con=con)
            for res in results:
                counts = _get(res, "counts") or {}
                intervals = _get(res, "intervals") or {}
                coverage = _num(_get(res, "coverage"))
                detector = str(_get(res, "detector") or "")
                version = str(_get(res, "version") or "")
                gsd = _num(_get(res, "gsd_m")) or scene_gsd
                dets = _get(res, "detections") or []
                if detections is not None:
                    dets = detections.get(detector, []) if isinstance(detections, Mapping) else detections
                crs = _get(res, "crs")
                to_wgs84 = _transformer(crs)
                sized = size_counts(res, size_classes)
                for cls, n in list(counts.items()) + [(c, k) for c, k in sized.items() if c not in counts]:
                    lo, hi = intervals.get(cls, (n, n)) if intervals else (n, n)
                    oid = con.execute(
                        "INSERT INTO observations (scene_id, aoi_id, class, count, count_lo, count_hi, coverage,"
                        " gsd_m, sensor, acquired, detector, version, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
                        " ON CONFLICT(scene_id, aoi_id, class, detector, version) DO UPDATE SET"
                        " count=excluded.count, count_lo=excluded.count_lo, count_hi=excluded.count_hi,"
                        " coverage=excluded.coverage, gsd_m=excluded.gsd_m, sensor=excluded.sensor,"
                        " acquired=excluded.acquired, created=excluded.created RETURNING id",
                        (sid, str(aoi_id), str(cls), _num(n), _num(lo), _num(hi), coverage, gsd, sensor,
                         acquired, detector, version, created)).fetchone()[0]
                    ids.append(oid)
                    con.execute("DELETE FROM detections WHERE observation_id = ?", (oid,))
                    if cls in sized and cls not in counts:
                        continue  # its objects are stored once, under the parent class
                    for d in dets:
                        if str(_get(d, "cls", _get(d, "class"))) != str(cls):
                            continue
                        rows_det.append((oid, str(cls), _num(_get(d, "score")), _num(_get(d, "length_m")),
                                         _num(_get(d, "width_m")), _props_json(d), _wkb(_get(d, "geometry"), to_wgs84)))
            if rows_det:
                con.executemany("INSERT INTO detections (observation_id, class, score, length_m, width_m,"
                                " properties, geometry) VALUES (?,?,?,?,?,?,?)", rows_det)
        return ids

    def add_size_classes(self, aoi: str | Sequence[str] | None = None,
                         size_classes: Mapping[str, str] | None = None) -> int:
        """Derive the size-class observations (:data:`SIZE_CLASS_SERIES`) a
        store written before they existed lacks, from its stored detections.

        For every observation of a parent class (``vessel`` for
        ``vessel_large``) by a detector whose detections carry a
        ``size_class`` property, and with no observation of the size class
        for the same scene, AOI, detector and version: the count of its
        detections of that size, its coverage, gsd and times. Idempotent;
        returns the observations written.
        """
        size_classes = SIZE_CLASS_SERIES if size_classes is None else size_classes
        where, params = self._filters(aoi, None, None, None, prefix="o.")
        n = 0
        created = _now()
        with self.transaction() as con:
            for size, cls in size_classes.items():
                parent = cls.rsplit("_", 1)[0]
                if parent == cls:
                    continue
                cond = (where + " AND " if where else " WHERE ") + "o.class = ?"
                sql = (
                    "INSERT INTO observations (scene_id, aoi_id, class, count, count_lo, count_hi, coverage, gsd_m,"
                    " sensor, acquired, detector, version, created)"
                    " SELECT o.scene_id, o.aoi_id, ?, c.n, c.n, c.n, o.coverage, o.gsd_m, o.sensor, o.acquired,"
                    " o.detector, o.version, ? FROM observations o"
                    " JOIN (SELECT o2.id AS oid, (SELECT COUNT(*) FROM detections d WHERE d.observation_id = o2.id"
                    "   AND json_extract(d.properties, '$.size_class') = ?) AS n FROM observations o2) c ON c.oid = o.id"
                    f"{cond}"
                    " AND o.detector IN (SELECT DISTINCT o3.detector FROM detections d3 JOIN observations o3"
                    "   ON o3.id = d3.observation_id WHERE o3.class = ?"
                    "   AND json_extract(d3.properties, '$.size_class') IS NOT NULL)"
                    " AND NOT EXISTS (SELECT 1 FROM observations x WHERE x.scene_id = o.scene_id"
                    "   AND x.aoi_id = o.aoi_id AND x.class = ? AND x.detector = o.detector AND x.version = o.version)")
                try:
                    n += con.execute(sql, [cls, created, size] + params + [parent, parent, cls]).rowcount
                except sqlite3.Error as e:
                    raise self._error(e) from None
        return n

    def write_observations(self, df: pd.DataFrame) -> int:
        """Bulk upsert observations from a frame (one transaction).

        Columns: scene_id, aoi_id, class, count, acquired (UTC); optional
        count_lo, count_hi, coverage (default 1), gsd_m, sensor, detector,
        version. Scenes rows are created for unknown scene ids. Returns rows written.
        """
        need = {"scene_id", "aoi_id", "class", "count", "acquired"}
        missing = need - set(df.columns)
        if missing:
            raise StoreError("observations", f"missing columns {sorted(missing)}")
        n = len(df)
        acq = pd.to_datetime(df["acquired"], utc=True)
        if acq.isna().any():
            raise StoreError("observations", "some rows have no acquisition time")
        acq_s = acq.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        cnt = pd.to_numeric(df["count"], errors="coerce").astype(float)

        def col(name, default):
            return df[name] if name in df.columns else pd.Series([default] * n, index=df.index)

        created = _now()
        cols = [df["scene_id"].astype(str), df["aoi_id"].astype(str), df["class"].astype(str), cnt,
                pd.to_numeric(col("count_lo", None), errors="coerce").fillna(cnt),
                pd.to_numeric(col("count_hi", None), errors="coerce").fillna(cnt),
                pd.to_numeric(col("coverage", 1.0), errors="coerce"),
                pd.to_numeric(col("gsd_m", None), errors="coerce"),
                col("sensor", None), acq_s, col("detector", "").astype(str), col("version", "").astype(str)]
        rows = [tuple(None if (isinstance(v, float) and math.isnan(v)) else v for v in r) + (created,)
                for r in zip(*(c.tolist() for c in cols))]
        scenes = {(r[0], r[9], r[8], r[7]) for r in rows}
        with self.transaction() as con:
            con.executemany("INSERT INTO scenes (id, acquired, sensor, gsd_m) VALUES (?,?,?,?) "
                            "ON CONFLICT(id) DO NOTHING", list(scenes))
            con.executemany(
                "INSERT INTO observations (scene_id, aoi_id, class, count, count_lo, count_hi, coverage,"
                " gsd_m, sensor, acquired, detector, version, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(scene_id, aoi_id, class, detector, version) DO UPDATE SET"
                " count=excluded.count, count_lo=excluded.count_lo, count_hi=excluded.count_hi,"
                " coverage=excluded.coverage, gsd_m=excluded.gsd_m, sensor=excluded.sensor,"
                " acquired=excluded.acquired, created=excluded.created", rows)
        return n

    def is_processed(self, scene_id: str, aoi_id: str, detector: str | None = None,
                     version: str | None = None) -> bool:
        """True when the store holds an observation of ``scene_id`` in ``aoi_id``
        (by that detector and version, when given)."""
        sql = "SELECT 1 FROM observations WHERE scene_id = ? AND aoi_id = ?"
        params: list = [str(scene_id), str(aoi_id)]
        if detector is not None:
            sql += " AND detector = ?"
            params.append(str(detector))
        if version is not None:
            sql += " AND version = ?"
            params.append(str(version))
        try:
            return self.con.execute(sql + " LIMIT 1", params).fetchone() is not None
        except sqlite3.Error as e:
            raise self._error(e) from None

    def record_failure(self, scene: Any, aoi_id: str | None, reason: str) -> None:
        """Record that a scene (a Scene, a mapping, an id or a path) failed for an AOI."""
        if isinstance(scene, (str, os.PathLike)):
            sid, path = str(scene), str(scene)
        else:
            sid, path = _get(scene, "id"), _get(scene, "path")
        with self.transaction() as con:
            con.execute("INSERT INTO failures (scene_id, path, aoi_id, reason, time) VALUES (?,?,?,?,?)",
                        (None if sid is None else str(sid), None if path is None else str(path),
                         aoi_id, " ".join(str(reason).split()), _now()))

    # -- alerts -----------------------------------------------------------
    def write_alerts(self, alerts: Iterable[Any]) -> list[int]:
        """Store alerts (objects or mappings with aoi_id, cls/class, kind, message,
        acquired, scene_id, observation_id, count, score).

        One alert is kept per (AOI, class, time, scene). An alert already
        stored is left as it is when the new one adds no kind; when it does
        (a ``spike`` later also found the onset of a sustained ``rise``), the
        stored alert is upgraded: its kind becomes the union
        (``spike+rise``, see :func:`merge_kinds`), its message and score
        the new ones (the old message kept in front when the new kind does not
        cover the old), and it counts as new again (state ``new``, not
        delivered). Returns the ids of the alerts that were new or upgraded.
        """
        new: list[int] = []
        created = _now()
        with self.transaction() as con:
            for a in alerts:
                key = (str(_get(a, "aoi_id")), str(_get(a, "cls", _get(a, "class"))),
                       utc_iso(_get(a, "acquired")), str(_get(a, "scene_id") or ""))
                kind, message = str(_get(a, "kind")), str(_get(a, "message"))
                old = con.execute("SELECT id, kind, message FROM alerts WHERE aoi_id=? AND class=? AND acquired IS ?"
                                  " AND scene_id=?", key).fetchone()
                if old is None:
                    cur = con.execute(
                        "INSERT INTO alerts (aoi_id, class, observation_id, scene_id, acquired, kind, count, score,"
                        " message, state, created) VALUES (?,?,?,?,?,?,?,?,?,'new',?) RETURNING id",
                        (key[0], key[1], _get(a, "observation_id"), key[3], key[2], kind,
                         _num(_get(a, "count")), _num(_get(a, "score")), message, created))
                    new.append(int(cur.fetchone()[0]))
                    continue
                merged = merge_kinds(old[1], kind)
                if merged == merge_kinds(old[1]):
                    continue  # nothing the stored alert does not already say
                if set(merge_kinds(kind).split("+")) < set(merged.split("+")):
                    message = f"{old[2]}; {message.split(': ', 1)[-1]}"
                con.execute("UPDATE alerts SET kind=?, message=?, score=?, count=?, observation_id=COALESCE(?,"
                            " observation_id), state='new', delivered=NULL WHERE id=?",
                            (merged, message, _num(_get(a, "score")), _num(_get(a, "count")),
                             _get(a, "observation_id"), old[0]))
                new.append(int(old[0]))
        return new

    def acknowledge(self, ids: Iterable[int] | None = None) -> int:
        """Mark alerts acknowledged (``ids=None``: all new alerts). Returns how many changed."""
        with self.transaction() as con:
            if ids is None:
                return con.execute("UPDATE alerts SET state='acknowledged' WHERE state='new'").rowcount
            n = 0
            for i in ids:
                n += con.execute("UPDATE alerts SET state='acknowledged' WHERE id=? AND state='new'",
                                 (int(i),)).rowcount
            return n

    def alert_ids(self) -> set[int]:
        return {r[0] for r in self.con.execute("SELECT id FROM alerts")}

    def mark_delivered(self, ids: Iterable[int], when: Any = None) -> None:
        """Record that alerts were delivered (UTC time, default now)."""
        t = utc_iso(when) if when is not None else _now()
        with self.transaction() as con:
            con.executemany("UPDATE alerts SET delivered=? WHERE id=?", [(t, int(i)) for i in ids])

    # -- external series --------------------------------------------------
    def write_series(self, name: str, df: pd.DataFrame, unit: str | None = None) -> int:
        """Upsert an external series: a frame with ``time`` and ``value`` (and
        optional ``status``, e.g. reported/derived). Returns rows written."""
        if not {"time", "value"} <= set(df.columns):
            raise StoreError(name, "series frame needs columns time and value")
        t = pd.to_datetime(df["time"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        v = pd.to_numeric(df["value"], errors="coerce")
        st = df["status"].astype(str) if "status" in df.columns else pd.Series([None] * len(df))
        rows = [(str(name), a, None if pd.isna(b) else float(b), unit, c)
                for a, b, c in zip(t.tolist(), v.tolist(), st.tolist())]
        with self.transaction() as con:
            con.executemany("INSERT INTO series (name, time, value, unit, status) VALUES (?,?,?,?,?) "
                            "ON CONFLICT(name, time) DO UPDATE SET value=excluded.value, unit=excluded.unit,"
                            " status=excluded.status", rows)
        return len(rows)

    def series(self, name: str) -> pd.DataFrame:
        """One external series: columns time (UTC), value, unit, status; sorted by time."""
        df = self._query("SELECT name, time, value, unit, status FROM series WHERE name=? ORDER BY time",
                         (str(name),))
        if df.empty:
            raise StoreError(name, f"no series of that name in {self.path}")
        df["time"] = pd.to_datetime(df["time"], utc=True)
        return df

    def series_names(self) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT DISTINCT name FROM series ORDER BY name")]

    # -- reads ------------------------------------------------------------
    @staticmethod
    def _filters(aoi, cls, since, until, prefix="") -> tuple[str, list]:
        where, params = [], []
        for col, val in (("aoi_id", aoi), ("class", cls)):
            if val is None:
                continue
            vals = [val] if isinstance(val, str) else list(val)
            where.append(f"{prefix}{col} IN ({','.join('?' * len(vals))})")
            params += [str(v) for v in vals]
        if since is not None:
            where.append(f"{prefix}acquired >= ?")
            params.append(utc_iso(since))
        if until is not None:
            where.append(f"{prefix}acquired < ?")
            params.append(utc_iso(until))
        return (" WHERE " + " AND ".join(where)) if where else "", params

    def observations(self, aoi: str | Sequence[str] | None = None, cls: str | Sequence[str] | None = None,
                     since: Any = None, until: Any = None, latest: bool = True) -> pd.DataFrame:
        """Observations as a DataFrame sorted by (aoi_id, class, acquired).

        ``acquired``/``created`` are tz-aware UTC timestamps; ``since`` is
        inclusive, ``until`` exclusive. With ``latest`` (default) only the
        most recently written detector version of each (scene, AOI, class)
        is returned, so re-processing with a new version does not double count.
        """
        where, params = self._filters(aoi, cls, since, until)
        df = self._query(f"SELECT * FROM observations{where} ORDER BY aoi_id, class, acquired, created", params)
        if latest and not df.empty:
            df = df.drop_duplicates(["scene_id", "aoi_id", "class"], keep="last")
        for c in ("acquired", "created"):
            df[c] = pd.to_datetime(df[c], utc=True)
        return df.reset_index(drop=True)

    def detections(self, aoi: str | Sequence[str] | None = None, cls: str | Sequence[str] | None = None,
                   since: Any = None, until: Any = None, scene: str | None = None):
        """Detections as a GeoDataFrame in EPSG:4326, with the observation's
        scene_id, aoi_id, acquired, detector and version."""
        import geopandas as gpd
        import shapely

        where, params = self._filters(aoi, cls, since, until, prefix="o.")
        if scene is not None:
            where += (" AND " if where else " WHERE ") + "o.scene_id = ?"
            params.append(str(scene))
        df = self._query(
            "SELECT d.id, d.observation_id, o.scene_id, o.aoi_id, d.class, o.acquired, d.score, d.length_m,"
            " d.width_m, d.properties, o.detector, o.version, d.geometry FROM detections d"
            f" JOIN observations o ON o.id = d.observation_id{where.replace(' class', ' o.class')}"
            " ORDER BY o.acquired, d.id", params)
        geom = shapely.from_wkb(df["geometry"].tolist()) if len(df) else []
        df["acquired"] = pd.to_datetime(df["acquired"], utc=True)
        return gpd.GeoDataFrame(df.drop(columns="geometry"), geometry=gpd.GeoSeries(geom, crs="EPSG:4326"),
                                crs="EPSG:4326")

    def alerts(self, aoi: str | Sequence[str] | None = None, cls: str | Sequence[str] | None = None,
               since: Any = None, state: str | None = None) -> pd.DataFrame:
        """Alerts sorted by time; ``state`` 'new' or 'acknowledged' filters."""
        where, params = self._filters(aoi, cls, since, None)
        if state is not None:
            where += (" AND " if where else " WHERE ") + "state = ?"
            params.append(state)
        df = self._query(f"SELECT * FROM alerts{where} ORDER BY acquired, id", params)
        for c in ("acquired", "created", "delivered"):
            df[c] = pd.to_datetime(df[c], utc=True)
        return df

    def failures(self) -> pd.DataFrame:
        """Recorded failures (scene_id, path, aoi_id, reason, time UTC)."""
        df = self._query("SELECT * FROM failures ORDER BY time, id")
        df["time"] = pd.to_datetime(df["time"], utc=True)
        return df

    def scenes(self) -> pd.DataFrame:
        df = self._query("SELECT * FROM scenes ORDER BY acquired, id")
        df["acquired"] = pd.to_datetime(df["acquired"], utc=True)
        return df

    def table(self, name: str) -> pd.DataFrame:
        """A whole table as a frame (detections as a GeoDataFrame)."""
        if name not in TABLES:
            raise StoreError(name, f"no such table; choose one of {', '.join(TABLES)}")
        if name == "detections":
            return self.detections()
        if name == "observations":
            return self.observations(latest=False)
        if name == "series":
            df = self._query("SELECT * FROM series ORDER BY name, time")
            df["time"] = pd.to_datetime(df["time"], utc=True)
            return df
        return getattr(self, name)()

    # -- export -----------------------------------------------------------
    def export(self, path: str | os.PathLike, table: str = "observations") -> Path:
        """Write a table to ``path``; the format follows the suffix:
        .csv, .json (records, ISO times), .parquet, .gpkg (GeoPackage; the
        detections layer has polygons in EPSG:4326, other tables are written
        as attribute-only layers). Returns the path."""
        path = Path(path)
        suffix = path.suffix.lower()
        df = self.table(table)
        try:
            if suffix == ".csv":
                _plain(df).to_csv(path, index=False)
            elif suffix == ".geojson" and table == "detections":
                df.to_file(path, driver="GeoJSON")
            elif suffix == ".json":
                _plain(df).to_json(path, orient="records", date_format="iso", indent=1)
            elif suffix in (".parquet", ".pq"):
                df.to_parquet(path, index=False)
            elif suffix == ".gpkg":
                import pyogrio

                if table == "detections":
                    df.to_file(path, layer=table, driver="GPKG")
                else:
                    out = df.copy()
                    for c in out.columns:
                        if isinstance(out[c].dtype, pd.DatetimeTZDtype):
                            out[c] = out[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
                    pyogrio.write_dataframe(out, path, layer=table, driver="GPKG")
            else:
                raise StoreError(path, f"unknown export format {suffix or '(none)'}; "
                                       "use .csv, .json, .parquet or .gpkg")
        except OSError as e:
            raise StoreError(path, f"cannot write: {e.strerror or e}") from None
        return path


#: The order alert kinds are joined in (``spike+record``, ``spike+rise``).
ALERT_KINDS = ("spike", "record", "drop", "rise")


def merge_kinds(*kinds: str) -> str:
    """The union of alert kinds, each ``a`` or ``a+b``, joined by ``+`` in
    :data:`ALERT_KINDS` order (unknown kinds after them, sorted)."""
    parts = {p for k in kinds if k for p in str(k).split("+") if p}
    known = [k for k in ALERT_KINDS if k in parts]
    return "+".join(known + sorted(parts - set(ALERT_KINDS)))


def main_class(obs: pd.DataFrame) -> str | None:
    """The class a set of observations is mostly about (``railcar``,
    ``vessel``): the most observed one, the size-class series of
    :data:`SIZE_CLASS_SERIES` last, ties by name; None when empty."""
    if obs is None or len(obs) == 0:
        return None
    n = obs["class"].value_counts()
    return sorted(n.index, key=lambda c: (c in SIZE_CLASS_SERIES.values(), -n[c], c))[0]


def size_counts(result: Any, size_classes: Mapping[str, str] | None = None) -> dict[str, int]:
    """Observation class -> count of the size classes a detection result
    reports in ``extras["count_by_size"]`` and ``size_classes`` names
    (default :data:`SIZE_CLASS_SERIES`); ``{}`` when it reports none."""
    size_classes = SIZE_CLASS_SERIES if size_classes is None else size_classes
    by_size = (_get(result, "extras") or {}).get("count_by_size")
    if not isinstance(by_size, Mapping) or not _get(result, "counts"):
        return {}
    return {size_classes[k]: int(v) for k, v in by_size.items() if k in size_classes and _num(v) is not None}


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """A plain DataFrame with geometry as WKT (for CSV/JSON)."""
    if hasattr(df, "geometry") and "geometry" in df.columns:
        out = pd.DataFrame(df.drop(columns="geometry"))
        out["geometry"] = df.geometry.to_wkt()
        return out
    return df


def _props_json(d: Any) -> str:
    props = dict(_get(d, "properties") or {})
    h = _get(d, "heading_deg")
    if h is not None:
        props.setdefault("heading_deg", h)
    return json.dumps(props, default=str)


def _transformer(crs: Any):
    """A function reprojecting shapely geometries from ``crs`` to WGS84, or None."""
    if crs is None:
        return None
    from pyproj import CRS, Transformer

    src = CRS.from_user_input(crs)
    if src.equals(CRS.from_epsg(4326)) or src.equals(CRS.from_user_input("OGC:CRS84")):
        return None
    tr = Transformer.from_crs(src, "EPSG:4326", always_xy=True)
    import shapely

    return lambda g: shapely.transform(g, lambda xy: __import__("numpy").column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def _wkb(geom: Any, to_wgs84=None) -> bytes | None:
    if geom is None:
        return None
    import shapely
    from shapely.geometry import shape

    if isinstance(geom, Mapping):
        geom = shape(geom)
    elif isinstance(geom, (bytes, bytearray)):
        geom = shapely.from_wkb(bytes(geom))
    elif isinstance(geom, str):
        geom = shapely.from_wkt(geom)
    if to_wgs84 is not None:
        geom = to_wgs84(geom)
    return shapely.to_wkb(geom)


def open_store(path: str | os.PathLike | None = None, **kw) -> Store:
    """Open (or create) a store; the same as ``Store(path)``."""
    return Store(path, **kw)
