"""Alerts: plain-words messages, idempotent storing, webhook delivery, the CLI."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.alerts import deliver_webhook, describe, describe_rise, raise_alerts, stored_alerts
from monitor.cli import app
from monitor.errors import InputError
from monitor.store import Store


def _fill(store, with_spike=True, seed=0):
    rng = np.random.default_rng(seed)
    t = pd.date_range("2018-01-03", periods=300, freq="7D", tz="UTC")
    df = pd.DataFrame({"scene_id": [f"s{i}" for i in range(300)], "aoi_id": "yard", "class": "railcar",
                       "count": np.minimum(rng.poisson(17, 300), 30), "acquired": t,
                       "detector": "railcars", "version": "1.0"})
    store.write_observations(df)
    if with_spike:
        store.write_result({"id": "big", "acquired": "2023-10-05T02:00:00Z"}, "yard",
                           [{"counts": {"railcar": 73}, "coverage": 1.0, "detector": "railcars", "version": "1.0"}])


def test_message_in_plain_words():
    row = pd.Series({"aoi_id": "tumangang", "class": "railcar", "acquired": pd.Timestamp("2023-10-05", tz="UTC"),
                     "count": 73.0, "coverage": 1.0, "median": 17.0, "z": 12.0, "record": True,
                     "record_since": pd.NaT, "first_time": pd.Timestamp("2018-01-03", tz="UTC"), "drop": False})
    assert describe(row, name="Tumangang") == ("Tumangang: 73 railcars on 2023-10-05, 4.3x the 5-year median (17),"
                                              " the highest since records began (2018-01)")
    row2 = row.copy()
    row2["record_since"] = pd.Timestamp("2021-06-02", tz="UTC")
    row2["first_time"] = pd.Timestamp("2020-03-01", tz="UTC")
    assert describe(row2, name="T").endswith("the median since 2020-03 (17), the highest since 2021-06-02")


def test_raise_alerts_idempotent(tmp_path):
    s = Store(tmp_path / "m.db")
    _fill(s)
    new = raise_alerts(s)
    assert [a.kind for a in new] == ["spike+record"]
    assert new[0].scene_id == "big" and "73 railcars on 2023-10-05" in new[0].message
    assert "highest since records began (2018-01)" in new[0].message
    assert raise_alerts(s) == []  # nothing new on a re-run
    assert len(s.alerts()) == 1
    assert s.acknowledge() == 1 and stored_alerts(s, new_only=True) == []


def test_ordinary_weeks_raise_nothing(tmp_path):
    s = Store(tmp_path / "m.db")
    _fill(s, with_spike=False)
    assert raise_alerts(s) == []


class _Hook(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def hook():
    _Hook.received = []
    _Hook.status = 200
    srv = HTTPServer(("127.0.0.1", 0), _Hook)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_port}/hook", _Hook
    srv.shutdown()
    srv.server_close()


def test_webhook_delivery_recorded(tmp_path, hook):
    url, handler = hook
    s = Store(tmp_path / "m.db")
    _fill(s)
    new = raise_alerts(s)
    assert deliver_webhook(new, url, store=s) == 1
    body = handler.received[0]
    assert body["alerts"][0]["class"] == "railcar" and body["alerts"][0]["acquired"] == "2023-10-05T02:00:00Z"
    assert s.alerts()["delivered"].notna().all()
    handler.status = 500
    with pytest.raises(InputError, match="HTTP 500"):
        deliver_webhook(new, url)
    with pytest.raises(InputError, match="not reachable"):
        deliver_webhook(new, "http://127.0.0.1:9/none", timeout=2)


def test_cli_alerts_exit_codes_and_ack(tmp_path, hook):
    url, handler = hook
    db = str(tmp_path / "m.db")
    s = Store(db)
    _fill(s)
    s.close()
    r = CliRunner().invoke(app, ["alerts", "--store", db, "--webhook", url])
    assert r.exit_code == 1 and "73 railcars on 2023-10-05" in r.output
    assert len(handler.received) == 1
    r = CliRunner().invoke(app, ["alerts", "--store", db, "--format", "json", "--aoi", "yard"])
    assert r.exit_code == 1 and json.loads(r.output)[0]["delivered"] is not None
    assert CliRunner().invoke(app, ["alerts", "--store", db, "--class", "vessel"]).exit_code == 0
    assert CliRunner().invoke(app, ["alerts", "--store", db, "--since", "2024-01-01"]).exit_code == 0
    aid = json.loads(r.output)[0]["id"]
    r = CliRunner().invoke(app, ["alerts", "ack", str(aid), "--store", db])
    assert r.exit_code == 0 and "acknowledged 1 alert" in r.output
    r = CliRunner().invoke(app, ["alerts", "--new", "--store", db])
    assert r.exit_code == 0 and "no alerts" in r.output
    r = CliRunner().invoke(app, ["alerts", "ack", "999", "--store", db])
    assert r.exit_code == 2 and "alert 999: no such alert" in r.output
    r = CliRunner().invoke(app, ["alerts", "--store", str(tmp_path / "no" / "m.db")])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = CliRunner().invoke(app, ["alerts", "--store", db, "--format", "xml"])
    assert r.exit_code == 2


def _rise_row(**kw):
    row = {"aoi_id": "dunay", "class": "vessel", "acquired": pd.Timestamp("2024-02-16", tz="UTC"), "count": 2.0,
           "coverage": 1.0, "median": 0.0, "z": 1.5, "spike": False, "record": False, "drop": False, "rise": True,
           "rise_n": 4, "rise_count": 6.0, "rise_expected": 0.56, "rise_p": 1e-6,
           "rise_start": pd.Timestamp("2023-08-30", tz="UTC"), "rise_ref_start": pd.Timestamp("2018-08-01", tz="UTC"),
           "first_time": pd.Timestamp("2018-01-03", tz="UTC"), "record_since": pd.NaT}
    row.update(kw)
    return pd.Series(row)


def test_rise_message_in_plain_words():
    assert describe(_rise_row(), name="Port Dunay") == (
        "Port Dunay: 6 vessels in the 4 scenes 2023-08-30..2024-02-16 (1.5 a scene), against 0.14 a scene"
        " in the 5 years before: a sustained rise")
    young = _rise_row(rise_ref_start=pd.Timestamp("2021-03-02", tz="UTC"), rise_expected=10.0)
    assert describe_rise(young, name="P").endswith("against 2.5 a scene since 2021-03: a sustained rise")
    both = describe(_rise_row(spike=True, z=5.0, median=0.5, count=3.0), name="P")
    assert both.startswith("P: 3 vessels on 2024-02-16, 6.0x") and "an unusual spike (z = 5.0); 6 vessels in the 4" in both


def _fill_rise(store):
    # a port that never saw a large ship, then one or two in every scene
    t = pd.date_range("2019-01-02", periods=60, freq="14D", tz="UTC")
    counts = [0] * 50 + [1, 2, 1, 1, 2, 1, 1, 2, 1, 1]
    store.write_observations(pd.DataFrame({"scene_id": [f"p{i}" for i in range(60)], "aoi_id": "port",
                                           "class": "large_ship", "count": counts, "acquired": t,
                                           "detector": "vessels", "version": "1.0"}))


def test_rise_alert_stored_once(tmp_path):
    s = Store(tmp_path / "m.db")
    _fill_rise(s)
    new = raise_alerts(s)
    assert [a.kind for a in new] == ["rise"]  # the onset only, not every scene of the rise
    assert new[0].scene_id == "p52" and "4 large_ships in the 3 scenes" in new[0].message
    assert "a sustained rise" in new[0].message and "in the 5 years before" not in new[0].message
    assert raise_alerts(s) == [] and len(s.alerts()) == 1
    assert s.alerts()["kind"].tolist() == ["rise"]


def test_big_ships_alert_on_their_own_series(tmp_path):
    # A port whose small craft vary a lot (3-12 a scene) and that sees no ship of 100 m or more
    # for years, then one every scene: the all-vessel count hides them, their own series rises.
    from shapely.geometry import box

    rng = np.random.default_rng(3)
    s = Store(tmp_path / "m.db")
    t = pd.date_range("2019-01-10", periods=70, freq="30D", tz="UTC")
    for i, when in enumerate(t):
        n_small, n_big = int(rng.integers(3, 13)), int(i >= 60)
        lengths = [20.0] * n_small + [118.0] * n_big
        dets = [{"cls": "vessel", "score": 0.99, "length_m": L, "width_m": L / 5,
                 "properties": {"size_class": "large_gt100m" if L >= 100 else "small_lt30m"},
                 "geometry": box(132.36 + 0.002 * k, 42.89, 132.361 + 0.002 * k, 42.8902)} for k, L in enumerate(lengths)]
        s.write_result({"id": f"d{i}", "acquired": when}, "dunay",
                       [{"counts": {"vessel": len(dets)}, "coverage": 1.0, "detector": "vessels", "version": "1.2",
                         "detections": dets,
                         "extras": {"count_by_size": {"small_lt30m": n_small, "medium_30_100m": 0,
                                                      "large_gt100m": n_big}}}])
    new = raise_alerts(s)
    big = [a for a in new if a.cls == "vessel_large"]
    assert [a.kind for a in big] == ["rise"] and big[0].scene_id == "d62"  # the third scene with one
    assert "ships of 100 m or more in the" in big[0].message and big[0].message.endswith("a sustained rise")
    assert not [a for a in new if a.cls == "vessel" and a.acquired >= t[60]]  # lost among the small craft
