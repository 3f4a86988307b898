"""Coarse-resolution railcar estimate (3 m, PlanetScope-like) on yards drawn in the test.

The yards are drawn at 0.5 m and averaged into 3 m pixels (the pixel
integrates the ground), then blurred by a half-pixel optical PSF: a car
3 m wide covers about one pixel across and is never a clean pixel.
"""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage
from shapely.geometry import LineString, box

from monitor.aoi import AOI, Feature
from monitor.detect.railcars import detect_railcars
from monitor.detect.railcars_coarse import cross_track_response, detect_railcars_coarse, occupancy_llr
from monitor.errors import InputError, SceneError
from monitor.imagery import Chip

CRS_UTM = CRS.from_epsg(32652)
X0, Y0 = 500_000.0, 4_700_000.0
FINE = 0.5
#: car body colours (reflectance): black tank, rusty gondola, grey boxcar, a load of coal, white
PALETTE = (0.05, 0.12, 0.30, 0.08, 0.55)


def yard(width_m=900.0, height_m=60.0, gsd=3.0, tracks_y=(20.0, 25.0, 30.0, 35.0), trains=None, seed=1,
         shade=None, psf_px=0.5, noise=0.004):
    """A 4-band yard chip at ``gsd`` drawn at 0.5 m: ground, ballast beds
    (4 m wide), cars 3 m wide with 1 m coupler gaps.

    trains: {track index: [(start_m, [car lengths]), ...]}.
    shade: (x0_m, x1_m, factor): a cloud shadow darkening all ground there.
    Returns (bands (4, h, w), valid, n_cars).
    """
    rng = np.random.default_rng(seed)
    w, h = int(width_m / FINE), int(height_m / FINE)
    U, V = np.meshgrid((np.arange(w) + 0.5) * FINE, (np.arange(h) + 0.5) * FINE)
    ground = np.array([0.10, 0.12, 0.14, 0.30])
    ballast = np.array([0.19, 0.185, 0.18, 0.21])
    img = ground[:, None, None] * (1 + 0.08 * rng.standard_normal((1, h, w)))
    n = 0
    for k, ty in enumerate(tracks_y):
        bed = np.abs(V - ty) < 2.0
        img = np.where(bed[None], ballast[:, None, None] * (1 + 0.05 * rng.standard_normal((1, h, w))), img)
        for start, lengths in (trains or {}).get(k, []):
            a = start
            for L in lengths:
                col = float(rng.choice(PALETTE))
                car = (np.abs(V - ty) < 1.5) & (U >= a) & (U < a + L - 1.0)
                img = np.where(car[None], np.array([col, col, col * 1.02, col * 1.1])[:, None, None], img)
                a += L
                n += 1
    if shade is not None:
        x0, x1, f = shade
        img = np.where(((U >= x0) & (U < x1))[None], img * f, img)
    k = int(round(gsd / FINE))
    hh, ww = h // k, w // k
    coarse = img[:, :hh * k, :ww * k].reshape(4, hh, k, ww, k).mean(axis=(2, 4))
    coarse = ndimage.gaussian_filter(coarse, (0, psf_px, psf_px))
    coarse = coarse + noise * rng.standard_normal(coarse.shape)
    return coarse.astype(np.float32), np.ones((hh, ww), bool), n


def chip_of(bands, valid, lines, gsd=3.0, name="coarse-yard"):
    tr = Affine(gsd, 0, X0, 0, -gsd, Y0)
    h, w = valid.shape
    feats = tuple(Feature("track", f"T{i}", ln, {"gauge_mm": 1520}) for i, ln in enumerate(lines))
    aoi = AOI(id="yard", name="Yard", country="XX", kind="rail_yard", boundary=box(X0, Y0 - h * gsd, X0 + w * gsd, Y0),
              features=feats, crs=CRS_UTM)
    return Chip(bands=bands, roles=("blue", "green", "red", "nir"), valid=valid, transform=tr, crs=CRS_UTM,
                gsd_m=gsd, aoi=aoi, meta={"scene": name})


def hline(y_m, x0=5.0, x1=895.0):
    return LineString([(X0 + x0, Y0 - y_m), (X0 + x1, Y0 - y_m)])


LINES = [hline(y) for y in (20.0, 25.0, 30.0, 35.0)]


def test_empty_yard_gives_about_zero_with_a_small_interval():
    bands, valid, _ = yard()
    res = detect_railcars_coarse(chip_of(bands, valid, LINES))
    lo, hi = res.intervals["railcar"]
    assert res.counts["railcar"] <= 1
    assert lo == 0 and hi <= 2
    assert res.extras["mode"] == "length" and res.extras["model"] == "mixture"
    assert res.coverage == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("track", [0, 2])
def test_known_20_car_train_is_counted_within_15_percent(track):
    cars = [13.9, 12.0, 14.7, 13.9, 19.6, 13.9, 12.0, 14.7, 13.9, 13.9] * 2
    bands, valid, n = yard(trains={track: [(150.0, cars)]}, seed=3 + track)
    res = detect_railcars_coarse(chip_of(bands, valid, LINES))
    count = res.counts["railcar"]
    lo, hi = res.intervals["railcar"]
    assert n == 20
    assert abs(count - 20) <= 0.15 * 20
    assert lo <= 20 <= hi
    per = res.extras["per_track"]
    # the train is on its own track: the neighbours 5 m away hold (almost) nothing
    assert per[f"T{track}"]["occupied_m"] == pytest.approx(sum(cars), rel=0.15)
    for k in range(4):
        if k != track:
            assert per[f"T{k}"]["occupied_m"] < 30.0
    assert len(res.detections) == count
    assert all(d.properties["track"] == f"T{track}" and d.properties["estimated"] for d in res.detections)


def test_trains_on_adjacent_tracks_are_both_counted():
    bands, valid, _ = yard(trains={1: [(100.0, [14.0] * 15)], 2: [(400.0, [14.0] * 12)]}, seed=5)
    res = detect_railcars_coarse(chip_of(bands, valid, LINES))
    per = res.extras["per_track"]
    assert per["T1"]["occupied_m"] == pytest.approx(15 * 14.0, rel=0.2)
    assert per["T2"]["occupied_m"] == pytest.approx(12 * 14.0, rel=0.2)
    assert abs(res.counts["railcar"] - 27) <= 0.15 * 27


def test_half_clouded_yard_reports_half_coverage():
    bands, valid, _ = yard(trains={1: [(600.0, [14.0] * 12)]}, seed=7)
    valid[:, : valid.shape[1] // 2] = False
    bands[:, ~valid] = 1.0
    res = detect_railcars_coarse(chip_of(bands, valid, LINES))
    assert res.coverage == pytest.approx(0.5, abs=0.05)
    assert abs(res.counts["railcar"] - 12) <= 2


def test_cloud_shadow_over_empty_track_is_not_a_train():
    bands, valid, _ = yard(shade=(300.0, 500.0, 0.5), seed=9)
    res = detect_railcars_coarse(chip_of(bands, valid, LINES))
    assert res.counts["railcar"] <= 1


def test_scene_that_misses_the_tracks_is_an_error():
    bands, valid, _ = yard()
    far = LineString([(X0 + 9000, Y0 - 30), (X0 + 9600, Y0 - 30)])
    with pytest.raises(SceneError, match="coarse-yard"):
        detect_railcars_coarse(chip_of(bands, valid, [far]))
    with pytest.raises(SceneError, match="no track"):
        detect_railcars_coarse(chip_of(bands, np.zeros_like(valid), LINES))


def test_detect_railcars_delegates_above_fine_gsd():
    bands, valid, _ = yard(trains={2: [(150.0, [14.0] * 20)]}, seed=11)
    chip = chip_of(bands, valid, LINES)
    res = detect_railcars(chip)
    assert res.extras["model"] == "mixture" and res.extras["mode"] == "length"
    assert res.counts == detect_railcars_coarse(chip).counts
    old = detect_railcars(chip, coarse_model="length")
    assert old.extras["mode"] == "length" and "model" not in old.extras
    with pytest.raises(InputError, match="coarse_model"):
        detect_railcars(chip, coarse_model="guess")


def test_cross_track_response_follows_the_pixel_size():
    h3, peak3 = cross_track_response(3.0)
    h10, peak10 = cross_track_response(10.0)
    assert h3(0.0) == pytest.approx(1.0)
    assert h3(5.0) < 0.2 < h10(5.0)  # 3 m pixels keep tracks 5 m apart apart, 10 m ones do not
    assert np.all(np.diff(h3(np.linspace(0, 12, 25))) <= 1e-9)
    assert 0.1 < peak10 < peak3 < 1.0  # a 3 m car keeps less of its contrast in a 10 m pixel


def test_occupancy_needs_both_noise_margin_and_car_contrast():
    z = np.array([1.0, 10.0, 10.0, 2.0])
    rel = np.array([0.5, 0.05, 0.3, 0.3])
    llr = occupancy_llr(z, rel, z_empty=1.0, floor_rel=0.1)
    # quiet; big anomaly but faint (ballast changing); a car; strong contrast but inside the noise
    assert llr[0] < 0 and llr[1] < 0 and llr[2] > 0 and llr[3] < 0


def test_lines_drawn_off_by_metres_are_snapped_back():
    # every line drawn 3 m south of its track (a georeference offset)
    bands, valid, _ = yard(trains={2: [(150.0, [14.0] * 20)]}, seed=13)
    off = [LineString([(x, y - 3.0) for x, y in ln.coords]) for ln in LINES]
    res = detect_railcars_coarse(chip_of(bands, valid, off))
    per = res.extras["per_track"]
    assert per["T2"]["shift_m"] == pytest.approx(3.0, abs=1.0)  # moved north: left of an eastward line
    assert abs(res.counts["railcar"] - 20) <= 3


def test_sentinel2_pixels_are_flagged_with_an_open_interval():
    bands, valid, _ = yard(gsd=10.0, trains={2: [(150.0, [14.0] * 20)]}, seed=15)
    res = detect_railcars_coarse(chip_of(bands, valid, LINES, gsd=10.0))
    lo, hi = res.intervals["railcar"]
    assert res.extras["resolution_limited"] is True
    assert lo == 0 and hi >= 4 * 890 / 12.0 - 1  # up to a full visible yard
    bands3, valid3, _ = yard(trains={2: [(150.0, [14.0] * 20)]}, seed=15)
    assert detect_railcars_coarse(chip_of(bands3, valid3, LINES)).extras["resolution_limited"] is False
