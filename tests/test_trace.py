"""Tracing track centrelines: a small numpy yard (ballast, rail pairs, a standing train)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import LineString, box
from typer.testing import CliRunner

from monitor.aoi import AOI, Feature, parse_aoi
from monitor.errors import InputError
from monitor.imagery import Chip
from monitor.trace import trace_aoi, trace_tracks

GSD = 0.5
CRS = "EPSG:32652"
X0, Y0 = 600000.0, 4700000.0
YS = (30.0, 35.0, 40.0)      # track centrelines, metres above the chip's bottom


def _yard(seed=0, train_on=1):
    rng = np.random.default_rng(seed)
    h, w = 140, 260                       # 70 m x 130 m
    y = (h - 0.5 - np.arange(h)) * GSD    # metres above the bottom
    x = (np.arange(w) + 0.5) * GSD
    Y, X = np.meshgrid(y, x, indexing="ij")
    img = 0.20 + 0.02 * rng.standard_normal((h, w))
    for k, yc in enumerate(YS):
        o = Y - yc
        img = np.where(np.abs(o) < 1.4, 0.17 + 0.02 * rng.standard_normal((h, w)), img)
        for side in (-1, 1):
            img += 0.25 * np.exp(-0.5 * ((o - side * 0.75) / 0.12) ** 2) * 0.5
        if k == train_on:
            car = (np.abs(o) < 1.45) & (X > 20) & (X < 90) & ((X - 20) % 15 < 14.2)
            img = np.where(car, 0.45, img)
    tr = from_origin(X0, Y0 + h * GSD, GSD, GSD)
    aoi_local = AOI(id="tyard", name="test yard", country="XX", kind="rail_yard",
                    boundary=box(X0 + 2, Y0 + 2, X0 + w * GSD - 2, Y0 + h * GSD - 2), crs=CRS,
                    features=(Feature("yard", "y1", box(X0 + 10, Y0 + 5, X0 + 60, Y0 + 15)),
                              Feature("track", "schematic", LineString([(X0 + 5, Y0 + 33), (X0 + 125, Y0 + 33)]),
                                      {"gauge_mm": 1435})))
    aoi = aoi_local.to_crs("EPSG:4326")
    bands = np.repeat(img[None].astype(np.float32), 3, axis=0) * 10000
    return Chip(bands=bands, roles=("red", "green", "blue"), valid=np.ones((h, w), bool), transform=tr,
                crs=rasterio.crs.CRS.from_string(CRS), gsd_m=GSD, aoi=aoi)


def test_traced_lines_lie_on_tracks():
    chip = _yard()
    feats = trace_tracks(chip, min_length_m=30)
    assert feats, "no track traced"
    truth = [LineString([(X0, Y0 + y), (X0 + 130, Y0 + y)]) for y in YS]
    for f in feats:
        assert f.role == "track" and f.geometry.geom_type == "LineString"
        assert 0.0 <= f.properties["confidence"] <= 1.0
        near = min(t.distance(f.geometry.centroid) for t in truth)
        assert near < 1.5, f"{f.id} is {near:.1f} m from every true track"


def test_traced_aoi_validates_and_keeps_other_features():
    chip = _yard()
    out = trace_aoi([chip], chip.aoi, merge="replace", min_length_m=30)
    doc = json.loads(json.dumps(out.to_geojson()))
    back = parse_aoi(doc, "traced.geojson")
    assert [f.id for f in back.yards] == ["y1"]
    assert back.tracks and all(f.id.startswith("trace-") for f in back.tracks)
    assert back.id == "tyard" and back.kind == "rail_yard"


def test_refine_keeps_the_schematic_id():
    chip = _yard()
    out = trace_aoi([chip], chip.aoi, merge="refine", min_length_m=30)
    back = parse_aoi(out.to_geojson(), "refined.geojson")
    ids = [f.id for f in back.tracks]
    assert "schematic" in ids and len(ids) == len(set(ids))
    ref = next(f for f in back.to_crs(CRS).tracks if f.id == "schematic")
    assert ref.properties["gauge_mm"] == 1435


def test_bad_inputs():
    with pytest.raises(InputError):
        trace_tracks([])
    with pytest.raises(InputError, match="merge"):
        trace_aoi([_yard()], merge="sideways")


def test_cli_missing_scene_exits_2(tmp_path):
    from monitor.cli import app

    aoi = tmp_path / "a.geojson"
    aoi.write_text(json.dumps(_yard().aoi.to_geojson()))
    r = CliRunner().invoke(app, ["aoi", "trace", str(tmp_path / "nope.tif"), "--aoi", str(aoi),
                                 "--out", str(tmp_path / "o.geojson")])
    assert r.exit_code == 2


def test_traced_lines_keep_the_track_spacing_and_cover_the_yard():
    """Tracks are never traced twice side by side (the railcar detector would
    treat two lines within 3 m as a switch), and every true track, the one
    under the train too, is mostly covered."""
    chip = _yard(seed=3)
    feats = trace_tracks(chip, min_length_m=30, spacing_m=(4.5, 5.5))
    geoms = [f.geometry for f in feats]
    for i, a in enumerate(geoms):
        for b in geoms[i + 1:]:
            close = a.intersection(b.buffer(0.65 * 4.5 - 0.1)).length
            assert close < 0.2 * min(a.length, b.length)
    from shapely.ops import unary_union

    traced = unary_union(geoms).buffer(1.0)
    for y in YS:
        t = LineString([(X0 + 5, Y0 + y), (X0 + 125, Y0 + y)])
        assert t.intersection(traced).length > 0.6 * t.length, f"track at {y} m not traced"


def test_two_scenes_combine_into_one_set_of_tracks():
    """Evidence of two scenes of one yard (a train on a different track in
    each) is combined: each true track traced once, the AOI validates."""
    a, b = _yard(seed=1, train_on=1), _yard(seed=2, train_on=2)
    out = trace_aoi([a, b], a.aoi, merge="replace", min_length_m=30)
    back = parse_aoi(out.to_geojson(), "two-scenes.geojson")
    local = back.to_crs(CRS)
    for y in YS:
        t = LineString([(X0 + 10, Y0 + y), (X0 + 120, Y0 + y)])
        near = [f for f in local.tracks if f.geometry.distance(t.interpolate(0.5, normalized=True)) < 1.5]
        assert len(near) == 1, f"track at {y} m traced {len(near)} times"


def _evidence_with_car_row(row_y: float, n_lines_y=(0.0, 5.0, 10.0, 15.0)):
    """A hand-made evidence grid (0.5 m, 16 orientations): car bodies (a bar
    broken every 15 m by couplings) along ``row_y``; the traced lines given."""
    from types import SimpleNamespace

    g, h, w = 0.5, 80, 320                       # 40 m x 160 m, origin at (0, 40)
    angles = np.arange(16) * np.pi / 16
    cars = np.zeros((16, h, w), np.float32)
    y = 40 - (np.arange(h) + 0.5) * g
    x = (np.arange(w) + 0.5) * g
    Y, X = np.meshgrid(y, x, indexing="ij")
    cars[0] = np.where((np.abs(Y - row_y) < 1.0) & (X > 20) & (X < 140) & ((X - 20) % 15 < 14), 5.0, 0.3)
    ev = SimpleNamespace(cars=cars, angles=angles, valid=np.ones((h, w), bool),
                         transform=from_origin(0, 40, g, g), gsd_m=g)
    lines = [(LineString([(0, yy + 10), (160, yy + 10)]), (3.0, 0.9)) for yy in n_lines_y]
    return ev, lines


def test_lattice_extends_over_a_car_row_beside_traced_tracks():
    """Cars one track spacing beyond the last of several parallel traced
    tracks mark a hidden track; a car row beside a lone line (no lattice)
    does not."""
    from monitor.trace import _extend_lattice

    ev, lines = _evidence_with_car_row(30.0, (0.0, 5.0, 10.0, 15.0))    # lines at y 10..25, cars at 30
    add = _extend_lattice(lines, ev, (4.5, 5.5), 50.0, 2.0)
    assert len(add) == 1
    ln = add[0][0]
    assert ln.length > 100 and abs(ln.centroid.y - 30.0) < 0.6
    ev, lines = _evidence_with_car_row(30.0, (15.0,))                   # one line at 25
    lone = lines + [(LineString([(0, 5), (160, 5)]), (3.0, 0.9))]        # and one far away
    assert _extend_lattice(lone, ev, (4.5, 5.5), 50.0, 2.0) == []


def _evidence_rails_then_train(drift_m: float):
    """Hand-made evidence (0.5 m, 16 orientations): rails visible along y = 20
    for x < 100 m, then a train whose car bodies (couplings every 15 m) hide
    them and whose axis drifts by ``drift_m`` across over its 60 m (a track
    turning away under the train)."""
    from types import SimpleNamespace

    from monitor.trace import _ridge

    g, h, w = 0.5, 80, 340                       # 40 m x 170 m, origin at (0, 40)
    angles = np.arange(16) * np.pi / 16
    y = 40 - (np.arange(h) + 0.5) * g
    x = (np.arange(w) + 0.5) * g
    Y, X = np.meshgrid(y, x, indexing="ij")
    bank = np.full((16, h, w), 0.2, np.float32)
    bank[0] = np.where((np.abs(Y - 20) < 0.5) & (X < 100), 3.0, 0.2)
    axis = 20 + drift_m * np.clip(X - 100, 0, None) / 60
    cars = np.full((16, h, w), 0.3, np.float32)
    body = (np.abs(Y - axis) < 1.5) & (X >= 100) & (X < 160) & ((X - 100) % 15 < 14)
    cars[0] = np.where(body, 0.3 + 5.0 * np.exp(-0.5 * ((Y - axis) / 0.7) ** 2), 0.3)   # peaks on the axis
    score, theta = bank.max(axis=0), np.zeros((h, w), np.float32)
    ev = SimpleNamespace(bank=bank, cars=cars, angles=angles, score=score, theta=theta,
                         ridge=_ridge(score, np.zeros((h, w), int), angles, 3), dominant=theta,
                         coherence=np.ones((h, w), np.float32), valid=np.ones((h, w), bool),
                         transform=from_origin(0, 40, g, g), gsd_m=g)
    return ev


def test_line_through_a_train_follows_the_car_bodies_axis():
    """Where a train hides the rails, the line keeps to the axis of its cars
    (the track's centreline), also where the track turns under the train;
    going straight on (car_snap_m=0) leaves it beside the cars."""
    from monitor.trace import _follow_all, _to_map

    ev = _evidence_rails_then_train(1.5)
    off = {}
    for snap in (0.3, 0.0):
        found = _follow_all(ev, 1.755, 1.3, min_length_m=50, car_snap_m=snap)
        assert len(found) == 1
        xy = _to_map(found[0][0], ev.transform)
        assert xy[:, 0].min() < 5 and xy[:, 0].max() > 140, "the line does not run into the train"
        near = xy[np.abs(xy[:, 0] - 140) < 2]
        off[snap] = float(np.abs(near[:, 1] - (20 + 1.5 * 40 / 60)).max())
        if snap:
            assert xy[:, 0].max() > 155, "the line stops inside the train"
    assert off[0.3] < 0.5, f"line {off[0.3]:.2f} m off the car axis"
    assert off[0.0] > 1.0


def _hand_evidence(h, w, rails_y=(), cars=()):
    """Hand-made evidence (0.5 m, 16 orientations, tracks along x, origin at
    (0, h * 0.5)): rail pairs along the rows ``rails_y`` (m) and car bodies
    ``cars`` = (y, x0, x1) in metres, couplings every 15 m."""
    from types import SimpleNamespace

    from monitor.trace import _ridge

    g = 0.5
    angles = np.arange(16) * np.pi / 16
    y = h * g - (np.arange(h) + 0.5) * g
    x = (np.arange(w) + 0.5) * g
    Y, X = np.meshgrid(y, x, indexing="ij")
    bank = np.full((16, h, w), 0.2, np.float32)
    for yr in rails_y:
        bank[0] = np.maximum(bank[0], np.where(np.abs(Y - yr) < 0.5, 3.0, 0.2))
    carb = np.full((16, h, w), 0.3, np.float32)
    for yc, x0, x1 in cars:
        body = (np.abs(Y - yc) < 1.5) & (X >= x0) & (X < x1) & ((X - x0) % 15 < 14)
        carb[0] = np.maximum(carb[0], np.where(body, 0.3 + 5.0 * np.exp(-0.5 * ((Y - yc) / 0.7) ** 2), 0.3))
    score, theta = bank.max(axis=0), np.zeros((h, w), np.float32)
    return SimpleNamespace(bank=bank, cars=carb, angles=angles, score=score, theta=theta,
                           ridge=_ridge(score, np.zeros((h, w), int), angles, 3), dominant=theta,
                           coherence=np.ones((h, w), np.float32), valid=np.ones((h, w), bool),
                           transform=from_origin(0, h * g, g, g), gsd_m=g)


def test_a_line_in_the_strip_between_two_empty_tracks_is_dropped():
    """The ballast between two tracks looks like a car body to the car
    channel; a car-carried line there (rails half a spacing away on both
    sides, none of its own) is dropped; the tracks and a real car row stay."""
    from monitor.trace import _between_tracks

    ev = _hand_evidence(100, 300, rails_y=(20.0, 25.0), cars=((22.5, 0, 150), (40.0, 0, 150)))
    lines = [(LineString([(5, y), (145, y)]), (2.0, 0.9)) for y in (20.0, 22.5, 25.0, 40.0)]
    kept = _between_tracks(lines, ev, 5.0, 1.3)
    assert sorted(round(ln.centroid.y, 1) for ln, _ in kept) == [20.0, 25.0, 40.0]


def test_a_car_row_cut_by_the_image_edge_may_be_short():
    """A 30 m row of cars running off the image is a track cut by the frame
    (kept with edge_min_length_m=20); the same row inside the image is too
    short for a track (min_length_m=50), and so is the edge row without the
    edge rule."""
    from monitor.trace import _follow_all, _to_map

    ev = _hand_evidence(80, 340, cars=((20.0, 140, 170), (30.0, 60, 90)))
    for edge, want in ((20.0, 1), (None, 0)):
        found = _follow_all(ev, 1.755, 1.3, min_length_m=50, edge_min_length_m=edge)
        assert len(found) == want
        if want:
            xy = _to_map(found[0][0], ev.transform)
            assert np.abs(xy[:, 1] - 20.0).max() < 0.6 and xy[:, 0].max() > 165 and xy[:, 0].min() < 145


def test_lone_lines_are_dropped_unless_they_join_the_yard_or_carry_a_train():
    """A yard is a network: lines in the lattice of parallel tracks, a branch
    leaving it through a turnout and a lone track with a train on it stay;
    a lone straight edge 18 m beside the yard (lighting the rail and the car
    channel at once) and a line meeting the yard square on (a wall) are
    dropped."""
    from monitor.trace import _lone_lines

    ev = _hand_evidence(220, 320, rails_y=(48.0,), cars=((2.0, 0, 150), (48.0, 0, 150)))
    lattice = [LineString([(5, y), (145, y)]) for y in (20.0, 25.0, 30.0)]
    branch = LineString([(145, 30), (160, 32.5), (200, 60), (240, 100)])       # leaves at ~10 degrees
    edge = LineString([(5, 48), (145, 48)])                                    # a road edge, alone
    train = LineString([(5, 2), (145, 2)])                                      # alone, under cars
    wall = LineString([(150, 36), (150, 105)])                                 # meets the yard square on
    lines = [(g, (2.0, 0.9)) for g in lattice + [branch, edge, train, wall]]
    kept = [g for g, _ in _lone_lines(lines, ev, (4.5, 5.5), 2.0, 1.3)]
    assert kept == lattice + [branch, train]
