"""Railcar detector on small yards drawn in the test (numpy, 0.5 m)."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage
from shapely.geometry import LineString, box

from monitor.aoi import AOI, Feature
from monitor.detect import detectors
from monitor.detect.railcars import VERSION, detect_railcars
from monitor.errors import InputError, SceneError
from monitor.imagery import Chip

CRS_UTM = CRS.from_epsg(32652)
X0, Y0 = 500_000.0, 4_700_000.0  # upper-left corner of the chips


def yard(width_m=300.0, height_m=60.0, gsd=0.5, tracks_y=(30.0,), trains=None, seed=1, cloud_x=None,
         car_colour=None):
    """A yard chip: ballast texture, two dark rails per track, cars as
    coloured rectangles 3 m wide with 1.2 m coupler gaps.

    tracks_y: track centre lines, metres below the top edge (horizontal).
    trains: per track, a list of (start_m, [car lengths]).
    cloud_x: pixels with x (m from left) below this are invalid (cloud).
    car_colour: one colour for every car (a block train), else random.
    """
    rng = np.random.default_rng(seed)
    w, h = int(width_m / gsd), int(height_m / gsd)
    u = (np.arange(w) + 0.5) * gsd
    v = (np.arange(h) + 0.5) * gsd
    U, V = np.meshgrid(u, v)
    img = 0.45 + 0.06 * rng.standard_normal((h, w))
    truth = []
    for k, ty in enumerate(tracks_y):
        dv = V - ty
        bed = np.abs(dv) < 1.6
        img = np.where(bed, img + 0.05, img)
        for side in (-0.76, 0.76):
            img -= 0.25 * np.exp(-0.5 * ((dv - side) / 0.18) ** 2)
        for start, lengths in (trains or {}).get(k, []):
            a = start
            for L in lengths:
                col = rng.choice([0.15, 0.25, 0.7, 0.8]) if car_colour is None else car_colour
                col += 0.03 * rng.standard_normal()
                car = (np.abs(dv) < 1.5) & (U >= a) & (U < a + L)
                img = np.where(car, col + 0.02 * rng.standard_normal((h, w)), img)
                truth.append((k, a, a + L))
                a += L + 1.2
    bands = np.stack([img, img * 0.95, img * 1.05]).astype(np.float32)
    valid = np.ones((h, w), bool)
    if cloud_x is not None:
        valid &= U >= cloud_x
        bands[:, ~valid] = 1.0
    return bands, valid, truth


def chip_of(bands, valid, lines, gsd=0.5, name="test-yard"):
    tr = Affine(gsd, 0, X0, 0, -gsd, Y0)
    h, w = valid.shape
    boundary = box(X0, Y0 - h * gsd, X0 + w * gsd, Y0)
    feats = tuple(Feature("track", f"T{i}", ln, {"gauge_mm": 1435}) for i, ln in enumerate(lines))
    aoi = AOI(id="yard", name="Yard", country="XX", kind="rail_yard", boundary=boundary,
              features=feats, crs=CRS_UTM)
    return Chip(bands=bands, roles=("red", "green", "blue"), valid=valid, transform=tr, crs=CRS_UTM,
                gsd_m=gsd, aoi=aoi, meta={"scene": name})


def hline(y_m, x0=5.0, x1=295.0, dy=0.0):
    """Horizontal track line y_m metres below the top, shifted dy metres down."""
    return LineString([(X0 + x0, Y0 - y_m - dy), (X0 + x1, Y0 - y_m - dy)])


def test_registered_for_rail_yards():
    spec = detectors()["railcar"]
    assert spec.fn is detect_railcars and spec.version == VERSION == "1.6" and "rail_yard" in spec.kinds


def test_empty_yard_gives_zero():
    bands, valid, _ = yard(tracks_y=(20.0, 40.0))
    res = detect_railcars(chip_of(bands, valid, [hline(20.0), hline(40.0)]))
    assert res.counts["railcar"] == 0
    assert res.detections == []
    assert res.coverage == pytest.approx(1.0, abs=0.02)


def test_known_train_count_and_geometry():
    cars = [14.0, 14.0, 12.0, 16.0, 14.0, 19.6, 14.0, 14.0]
    bands, valid, truth = yard(trains={0: [(60.0, cars)]})
    res = detect_railcars(chip_of(bands, valid, [hline(30.0)]))
    assert res.counts["railcar"] == len(cars)
    assert res.intervals["railcar"] == (len(cars), len(cars))
    starts = sorted(d.geometry.bounds[0] - X0 for d in res.detections)
    assert np.allclose(starts, [t[1] for t in truth], atol=1.5)
    for d in res.detections:
        assert d.properties["track"] == "T0"
        assert 2.0 <= d.width_m <= 4.0 and 10.0 <= d.length_m <= 22.0
        assert 0.0 <= d.score <= 1.0
        assert d.heading_deg == pytest.approx(90.0, abs=2)  # east-west track
    occ = res.extras["occupied_m"]
    assert occ == pytest.approx(sum(cars) + 1.2 * (len(cars) - 1), rel=0.1)


def test_half_clouded_yard_reports_half_coverage():
    bands, valid, _ = yard(trains={0: [(200.0, [14.0] * 5)]}, cloud_x=150.0)
    res = detect_railcars(chip_of(bands, valid, [hline(30.0)]))
    assert res.coverage == pytest.approx(0.5, abs=0.05)
    assert res.counts["railcar"] == 5


def test_scene_that_misses_the_tracks_is_an_error():
    bands, valid, _ = yard()
    far = LineString([(X0 + 5000, Y0 - 30), (X0 + 5300, Y0 - 30)])
    with pytest.raises(SceneError, match="test-yard"):
        detect_railcars(chip_of(bands, valid, [far]))
    with pytest.raises(SceneError, match="not visible|no track"):
        detect_railcars(chip_of(bands, np.zeros_like(valid), [hline(30.0)]))


def test_aoi_without_tracks_is_an_input_error():
    bands, valid, _ = yard()
    with pytest.raises(InputError, match="no track"):
        detect_railcars(chip_of(bands, valid, []))


@pytest.mark.parametrize("dy", [3.0, -4.0, 5.0])
def test_offset_track_line_is_snapped_back(dy):
    bands, valid, _ = yard(trains={0: [(100.0, [14.0] * 6)]})
    res = detect_railcars(chip_of(bands, valid, [hline(30.0, dy=dy)]))
    info = res.extras["per_track"]["T0"]
    assert info["offset_m"] == pytest.approx(abs(dy), abs=0.5)
    # the shift to the left of an eastward line is north (up): dy>0 drew it south
    assert info["shift_m"] == pytest.approx(dy, abs=0.5)
    assert res.counts["railcar"] == 6


def test_adjacent_tracks_are_counted_once_each():
    trains = {0: [(40.0, [14.0] * 7)], 1: [(90.0, [16.0] * 5)]}
    bands, valid, _ = yard(tracks_y=(28.0, 32.8), trains=trains)
    res = detect_railcars(chip_of(bands, valid, [hline(28.0), hline(32.8)]))
    per = res.extras["per_track"]
    assert per["T0"]["count"] == 7
    assert per["T1"]["count"] == 5
    assert res.counts["railcar"] == 12


def test_coarse_gsd_estimates_count_with_interval():
    # the empty-track look is learnt from the scene: most track is empty
    cars = [14.0] * 12
    bands, valid, _ = yard(width_m=600.0, gsd=3.0, trains={0: [(100.0, cars)]})
    # the thresholded-length path (coarse_model="length"); the default coarse
    # model is tested on area-integrated 3 m yards in tests/test_railcars_coarse.py
    res = detect_railcars(chip_of(bands, valid, [hline(30.0, x1=595.0)], gsd=3.0), coarse_model="length")
    lo, hi = res.intervals["railcar"]
    n = res.counts["railcar"]
    assert res.extras["mode"] == "length"
    assert lo <= n <= hi
    assert abs(n - len(cars)) <= 0.15 * len(cars)


def test_unmasked_thick_cloud_is_screened_out():
    # a third of the yard under a bright cloud that the scene did not mask
    bands, valid, _ = yard(trains={0: [(200.0, [14.0] * 5)]}, cloud_x=100.0)
    valid[:] = True
    res = detect_railcars(chip_of(bands, valid, [hline(30.0)]))
    # the cloud and a margin around it are not counted as seen
    assert 0.45 <= res.coverage <= 195.0 / 290.0 + 0.02
    assert res.counts["railcar"] == 5


def _snowy_yard(trains=None, gsd=1.0):
    # an empty-looking track bed (dark, 3 m) through snow on the left 60%
    # and bare dark ground on the right: the empty track's look changes
    # with its surroundings and must not read as a train
    bands, valid, truth = yard(width_m=400.0, gsd=gsd, trains=trains)
    h, w = valid.shape
    u = (np.arange(w) + 0.5) * gsd
    v = (np.arange(h) + 0.5) * gsd
    U, V = np.meshgrid(u, v)
    bed = np.abs(V - 30.0) < 1.6
    car = np.zeros_like(bed)
    for _, a, b in truth:
        car |= (np.abs(V - 30.0) < 1.5) & (U >= a) & (U < b)
    snow = (U < 240.0) & ~bed & ~car
    bands[:, snow] = 0.9 + 0.02 * np.random.default_rng(3).standard_normal(snow.sum())
    return bands, valid, truth


def test_empty_track_through_snow_and_bare_ground_is_empty():
    bands, valid, _ = _snowy_yard(gsd=1.0)
    res = detect_railcars(chip_of(bands, valid, [hline(30.0, x1=395.0)], gsd=1.0))
    assert res.counts["railcar"] == 0



@pytest.mark.parametrize("gsd", [0.5, 1.0])
def test_thin_cloud_and_cloud_shadow_over_an_empty_track_count_nothing(gsd):
    # a train on the left; a patch of thin unmasked cloud (additive
    # brightening) and a cloud shadow (darkening) over empty track
    cars = [14.0] * 4
    bands, valid, _ = yard(width_m=500.0, gsd=gsd, trains={0: [(20.0, cars)]})
    h, w = valid.shape
    u = (np.arange(w) + 0.5) * gsd
    ramp = lambda a, b: np.clip((u - a) / 15.0, 0, 1) * np.clip((b - u) / 15.0, 0, 1)  # noqa: E731
    bands = bands + 0.35 * ramp(150.0, 290.0)[None, None, :]
    bands = bands * (1.0 - 0.55 * ramp(320.0, 460.0))[None, None, :]
    res = detect_railcars(chip_of(bands.astype(np.float32), valid, [hline(30.0, x1=495.0)], gsd=gsd))
    assert res.counts["railcar"] == len(cars)
    assert all(d.geometry.bounds[2] - X0 < 100.0 for d in res.detections)


def test_solar_azimuth_follows_the_clock():
    from datetime import datetime, timezone

    from monitor.sun import sun_position

    # mid-morning in June at Tumangang: sun in the south-east, high; local noon: south
    az, el = sun_position(datetime(2024, 6, 17, 1, 30, tzinfo=timezone.utc), 42.3, 130.6)
    assert 100 < az < 140 and 40 < el < 70
    noon = datetime(2024, 3, 20, 12, 0, tzinfo=timezone.utc)
    az, el = sun_position(noon, 45.0, 0.0)
    assert az == pytest.approx(180.0, abs=5.0) and el == pytest.approx(45.0, abs=2.0)


def test_shifted_strip_equals_sampling_the_moved_line():
    from monitor.detect.tracks import sample, shifted, stations

    bands, valid, _ = yard(trains={0: [(60.0, [14.0] * 3)]})
    chip = chip_of(bands, valid, [hline(30.0)])
    s, xy, nrm = stations(hline(30.0, dy=1.0), 0.25)
    o = 0.25 * np.arange(-40, 41)
    wide = sample(bands, valid, chip.transform, xy, nrm, o, s)
    shift = np.full(len(s), 1.0)  # one metre to the left (north): onto the track
    moved = shifted(wide, shift, o[8:-8])
    direct = sample(bands, valid, chip.transform, xy + shift[:, None] * nrm, nrm, o[8:-8], s)
    assert np.allclose(moved.values, direct.values, atol=1e-5)
    assert np.array_equal(moved.valid, direct.valid)
    assert np.allclose(moved.xy, direct.xy)



@pytest.mark.parametrize("gsd", [0.3, 0.5])
def test_empty_tracks_beside_an_occupied_one_do_not_change_its_count(gsd):
    # a train of 8 cars on one track, eight empty tracks 5 m apart around
    # it: given alone or with the empty tracks (as a tracer gives them),
    # the train's track counts the same and the empty ones nothing
    ys = (10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0)
    busy = ys.index(30.0)
    bands, valid, truth = yard(gsd=gsd, tracks_y=ys, trains={busy: [(60.0, [15.0, 13.0, 17.0, 15.0] * 2)]}, seed=5)
    alone = detect_railcars(chip_of(bands, valid, [hline(30.0)], gsd=gsd))
    many = detect_railcars(chip_of(bands, valid, [hline(y) for y in ys], gsd=gsd))
    n_alone = alone.extras["per_track"]["T0"]["count"]
    n_many = many.extras["per_track"][f"T{busy}"]["count"]
    assert abs(n_alone - len(truth)) <= 1
    assert n_many == n_alone
    assert many.counts["railcar"] == n_many  # nothing on the empty tracks


def test_train_over_most_of_its_track_is_not_learnt_as_its_empty_look():
    # 0.3 m (rails resolved): a block train (one colour) over ~75% of one
    # track among empty tracks; the track's own densest look is the
    # train's, and hides the rails its empty stretch and the other tracks show
    ys = (15.0, 20.0, 25.0, 30.0, 35.0)
    busy = ys.index(25.0)
    bands, valid, truth = yard(gsd=0.3, tracks_y=ys, trains={busy: [(40.0, [15.0, 13.0, 17.0, 15.0] * 3 + [15.0, 14.0])]},
                               seed=6, car_colour=0.25)
    res = detect_railcars(chip_of(bands, valid, [hline(y) for y in ys], gsd=0.3))
    assert abs(res.extras["per_track"][f"T{busy}"]["count"] - len(truth)) <= 1
    assert abs(res.counts["railcar"] - len(truth)) <= 1


def test_shade_gain_needs_both_flanks_darkened_alike():
    from monitor.detect.railcars import _deshade, _shade_gain

    n = 400
    ok = np.ones(n, bool)
    left, right = np.full(n, 120.0), np.full(n, 90.0)
    cloud = slice(100, 200)   # a cloud shadow: both flanks at 0.55
    left[cloud] *= 0.55
    right[cloud] *= 0.55
    car = slice(250, 280)     # a car's own shadow: one flank only
    right[car] *= 0.5
    g = _shade_gain(left, right, ok)
    assert np.allclose(g[cloud], 0.55)
    assert np.all(g[car] == 1.0) and np.all(g[:100] == 1.0)
    # z-scores of a raw value darkened by 0.5 come back to the unshaded ones
    med, mad = np.array([0.4, 0.5]), np.array([0.1, 0.2])
    raw = np.array([[0.6, 0.3]])
    z_dark = (0.5 * raw - med) / mad
    back = _deshade(z_dark, np.array([0.5]), med / mad)
    assert np.allclose(back, (raw - med) / mad)


def test_deshade_keeps_a_train_and_empties_a_shaded_track():
    cars = [14.0] * 4
    bands, valid, _ = yard(width_m=500.0, gsd=1.0, trains={0: [(20.0, cars)]})
    u = (np.arange(valid.shape[1]) + 0.5) * 1.0
    ramp = np.clip((u - 300.0) / 15.0, 0, 1) * np.clip((460.0 - u) / 15.0, 0, 1)
    bands = (bands * (1.0 - 0.55 * ramp)[None, None, :]).astype(np.float32)
    chip = chip_of(bands, valid, [hline(30.0, x1=495.0)], gsd=1.0)
    res = detect_railcars(chip)
    assert res.counts["railcar"] == len(cars)
    assert all(d.geometry.bounds[2] - X0 < 100.0 for d in res.detections)


def dark_bed_yard(gsd):
    """Three tracks; cars on the outer two cast shadows north (sun in the
    south); the middle track is empty with old dark sleepers and a dark
    ballast shoulder whose darkness, blurred, reaches both flanks."""
    ys = (15.0, 35.0, 55.0)
    trains = {0: [(20.0, [14.0] * 8)], 2: [(60.0, [14.0] * 4)]}
    bands, valid, truth = yard(width_m=400.0, height_m=70.0, gsd=gsd, tracks_y=ys, trains=trains, seed=3)
    h, w = valid.shape
    U, V = np.meshgrid((np.arange(w) + 0.5) * gsd, (np.arange(h) + 0.5) * gsd)
    for k, a, b in truth:
        bands[:, (V < ys[k] - 1.5) & (V > ys[k] - 4.5) & (U >= a) & (U < b)] *= 0.45
    bands *= (1.0 - 0.55 * np.clip((2.9 - np.abs(V - ys[1])) / 0.9, 0, 1))[None]
    bands = ndimage.gaussian_filter(bands, (0, 0.6, 0.6))
    return chip_of(bands, valid, [hline(y, x1=395.0) for y in ys], gsd=gsd), truth


def test_dark_empty_track_bed_is_not_read_as_car_shadows():
    # 1 m: the dark bed darkens both flanks beside the empty track, as it
    # does where no car stands; a car's shadow darkens the anti-sun side only
    chip, truth = dark_bed_yard(1.0)
    res = detect_railcars(chip, sun_azimuth_deg=180.0)
    assert res.extras["shadow"] is not None
    per = {k: v["count"] for k, v in res.extras["per_track"].items()}
    assert per["T1"] == 0 and res.counts["railcar"] == len(truth)
    # without the rule the dark flanks read as shadows of cars
    off = detect_railcars(chip, sun_azimuth_deg=180.0, usual_flanks=False)
    assert off.extras["per_track"]["T1"]["count"] > 0


def test_usual_contrast_follows_the_empty_stations_only():
    from monitor.detect.railcars import _usual_contrast

    ds = 0.5
    c = np.full(2000, 2.0)          # a dark stripe along an empty track
    c[800:1200] = 5.0               # a train's shadow
    empty = np.ones(2000, bool)
    empty[800:1200] = False
    u = _usual_contrast(c, empty, ds)
    assert np.allclose(u[:600], 2.0) and np.allclose(u[1400:], 2.0)
    assert u[1000] < 0.5            # inside a long train: no usual look
    # too few empty stations: nothing is taken as usual
    few = np.zeros(2000, bool)
    few[:40] = True
    assert not _usual_contrast(c, few, ds).any()


def test_shade_gain_counts_a_faint_shade_beyond_the_flanks_own_scatter():
    from monitor.detect.railcars import _shade_gain

    rng = np.random.default_rng(0)
    n = 600
    ok = np.ones(n, bool)
    haze = slice(200, 320)    # a faint shade: 6 % less light on both flanks
    # smooth ground (1 % scatter): the faint shade stands out of it
    left, right = 120.0 * (1 + 0.01 * rng.standard_normal(n)), 90.0 * (1 + 0.01 * rng.standard_normal(n))
    left[haze] *= 0.94
    right[haze] *= 0.94
    g = _shade_gain(left, right, ok)
    assert np.median(g[haze]) == pytest.approx(0.94, abs=0.02) and np.mean(g[:150] == 1.0) > 0.9
    # rough ground (8 % scatter): the same change is within its texture
    left, right = 120.0 * (1 + 0.08 * rng.standard_normal(n)), 90.0 * (1 + 0.08 * rng.standard_normal(n))
    left[haze] *= 0.94
    right[haze] *= 0.94
    g = _shade_gain(left, right, ok)
    assert np.mean(g[haze] == 1.0) > 0.6


def shaded_neighbour_yard(gsd, own_cars=False, reach=5.5):
    """Tracks 20 and 25 m below the top, a third at 45 m; sun in the south:
    each car's shadow falls north to ``reach`` m off its track centre, so
    the long train on the middle track shades the bed of the northern
    track (5 m away). ``own_cars``: three cars on the northern track too,
    in that shade, casting their own shadows on the open ground north."""
    ys = (20.0, 25.0, 45.0)
    trains = {1: [(40.0, [14.0] * 12)], 2: [(100.0, [14.0] * 6)]}
    if own_cars:
        trains[0] = [(70.0, [14.0] * 3)]
    bands, valid, truth = yard(width_m=400.0, height_m=60.0, gsd=gsd, tracks_y=ys, trains=trains, seed=5)
    h, w = valid.shape
    U, V = np.meshgrid((np.arange(w) + 0.5) * gsd, (np.arange(h) + 0.5) * gsd)
    for k, a, b in sorted(truth, key=lambda t: -t[0]):
        bands[:, (V < ys[k] - 1.5) & (V > ys[k] - reach) & (U >= a) & (U < b)] *= 0.45
    bands = ndimage.gaussian_filter(bands, (0, 0.6, 0.6))
    return chip_of(bands, valid, [hline(y, x1=395.0) for y in ys], gsd=gsd), truth


@pytest.mark.parametrize("gsd", [1.0, 1.2])
def test_a_trains_shadow_over_the_next_track_is_not_cars(gsd):
    chip, truth = shaded_neighbour_yard(gsd)
    res = detect_railcars(chip, sun_azimuth_deg=180.0)
    per = {k: v["count"] for k, v in res.extras["per_track"].items()}
    assert per["T0"] == 0 and per["T1"] == 12 and per["T2"] == 6
    # without the rule the shaded bed reads as a row of cars
    off = detect_railcars(chip, sun_azimuth_deg=180.0, neighbour_shade=False)
    assert off.extras["per_track"]["T0"]["count"] >= 6


def test_cars_in_a_neighbouring_trains_shade_still_count_by_their_own_shadows():
    chip, truth = shaded_neighbour_yard(1.0, own_cars=True)
    res = detect_railcars(chip, sun_azimuth_deg=180.0, snap=False)
    assert res.extras["per_track"]["T0"]["count"] == 3


def test_train_over_most_of_track_opt_in():
    """A train over most of one track (14 cars on t1 of a 300 m yard) is
    that track's densest look; with ``train_rhythm`` its coupler rhythm
    refuses it as the track's empty look and the cars are counted."""
    from monitor.synth.demo import demo_rail_aoi
    from monitor.synth.rail import render_rail_scene

    aoi = demo_rail_aoi(n_tracks=3, length_m=300)
    sc = render_rail_scene(aoi, gsd_m=0.5, seed=11, cars=14)
    assert {t.track for t in sc.truth} == {"t1"}
    chip = Chip(bands=sc.bands.astype(np.float32), roles=sc.roles, valid=np.ones(sc.shape, bool),
                transform=sc.transform, crs=sc.crs, gsd_m=sc.gsd_m, aoi=aoi,
                meta={"scene": "synth seed 11", "acquired": sc.acquired})
    res = detect_railcars(chip, train_rhythm=True)
    per = res.extras["per_track"]
    assert abs(per["t1"]["count"] - len(sc.truth)) <= 2
    assert sum(v["count"] for k, v in per.items() if k != "t1") == 0


def test_unmasked_cloud_edge_keeps_clear_track_beside_it():
    """A thick cloud the scene's mask missed hides the track under it, but
    a train standing in clear air 40 m from the cloud's edge is counted
    (the old 80 m growth of the cloud hid it)."""
    gsd = 0.5
    bands, valid, truth = yard(width_m=600.0, height_m=400.0, tracks_y=(200.0,),
                               trains={0: [(300.0, [14.0] * 5)]}, seed=4)
    h, w = valid.shape
    U, V = np.meshgrid((np.arange(w) + 0.5) * gsd, (np.arange(h) + 0.5) * gsd)
    # a cloud disc of 100 m radius centred 160 m from the left, its edge
    # 40 m short of the train; a 10 m soft fringe
    r = np.hypot(U - 160.0, V - 200.0)
    a = np.clip((100.0 - r) / 10.0, 0.0, 1.0).astype(np.float32)
    bands = bands * (1 - a) + 0.95 * a
    lines = [hline(200.0, x0=5.0, x1=595.0)]
    res = detect_railcars(chip_of(bands, valid, lines, gsd=gsd))
    assert res.counts["railcar"] == len(truth) == 5
    # the cloud hides about a third of the track (200 m of 590 m), not more
    assert 0.55 <= res.coverage <= 0.72
    old = detect_railcars(chip_of(bands, valid, lines, gsd=gsd), cloud_edge_m=None)
    assert old.coverage < res.coverage


def _shadowed_yard():
    """Four tracks 8 m apart at 0.5 m (rails not resolved): a block train
    of 13 alike cars over two thirds of track 0, a few cars on tracks 1
    and 2, every car's shadow on the ground 1.5-3.5 m south of it (sun in
    the north), and a dark ditch along the south side of the empty track 3."""
    gsd = 0.5
    tracks_y = (12.0, 20.0, 28.0, 36.0)
    trains = {0: [(40.0, [14.0] * 13)], 1: [(60.0, [14.0, 16.0, 12.0])], 2: [(150.0, [13.0, 15.0])]}
    bands, valid, truth = yard(width_m=300.0, height_m=48.0, tracks_y=tracks_y, trains=trains, seed=7,
                               car_colour=0.75)
    h, w = valid.shape
    U, V = np.meshgrid((np.arange(w) + 0.5) * gsd, (np.arange(h) + 0.5) * gsd)
    dark = np.zeros((h, w), bool)
    for k, a, b in truth:
        dv = V - tracks_y[k]
        dark |= (dv > 1.5) & (dv < 3.5) & (U >= a) & (U < b)
    bands = np.where(dark[None], bands * 0.45, bands)
    ditch = (V - tracks_y[3] > 1.8) & (V - tracks_y[3] < 3.2)
    bands = np.where(ditch[None], bands * 0.3, bands).astype(np.float32)
    return chip_of(bands, valid, [hline(y) for y in tracks_y], gsd=gsd), truth


def test_block_train_casting_shadow_is_not_the_tracks_empty_look_and_a_ditch_is_no_shadow():
    chip, truth = _shadowed_yard()
    dbg = []
    res = detect_railcars(chip, sun_azimuth_deg=0.0, debug=dbg)
    per = {k: v["count"] for k, v in res.extras["per_track"].items()}
    assert per == {"T0": 13, "T1": 3, "T2": 2, "T3": 0} and res.counts["railcar"] == len(truth)
    assert res.extras["shadow"] is not None
    # the block train is track 0's densest look: refused as its empty look
    # (its stations cast the cars' shadow), unlike the ditch's track
    own = {e["track"]: e["cross"] for e in dbg}
    assert own["T0"].get("refused") and not own["T3"].get("refused")
    # the ditch's one-sided darkening all along the empty track is its
    # usual look once counted from the anti-sun flank alone
    old = detect_railcars(chip, sun_azimuth_deg=0.0, own_shadow=False, usual_one_side=False)
    assert old.extras["per_track"]["T3"]["count"] > 5
