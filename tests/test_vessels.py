"""Vessel detector: optical contrast on water, SAR CFAR, water masks.

Chips are built in the tests on a UTM grid: water with noise, a quay, hulls
drawn as oriented rectangles (brighter than water in every band, as paint
and decks are), land with bright buildings.
"""

import numpy as np
import pytest
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry import LineString, box

from monitor.aoi import AOI, Feature
from monitor.detect import detectors
from monitor.detect.vessels import detect_vessels, local_background, size_class
from monitor.detect.water import water_mask
from monitor.errors import InputError
from monitor.imagery import Chip

from vessel_chips import DECK, GROUND, ROLES, UTM, WATER, X0, Y0, hull



def make_chip(size_m=600.0, gsd=2.0, land=None, hulls=(), seams=(), water_polys=None, berths=(),
              seed=0, buildings=(), sensor="optical"):
    """An optical chip (red, green, blue, nir reflectance) on a UTM grid.

    land: polygon of land (default none: all water). Hulls are bright in all
    bands; seams (polygons) are drawn at half the hull contrast.
    """
    rng = np.random.default_rng(seed)
    n = int(size_m / gsd)
    tr = Affine(gsd, 0, X0, 0, -gsd, Y0 + size_m)
    water, ground, deck, roles = WATER, GROUND, DECK, ROLES
    land_m = rasterize([(land, 1)], out_shape=(n, n), transform=tr).astype(bool) if land is not None else np.zeros((n, n), bool)
    hull_m = rasterize([(h, 1) for h in hulls], out_shape=(n, n), transform=tr).astype(bool) if hulls else np.zeros((n, n), bool)
    seam_m = rasterize([(s, 1) for s in seams], out_shape=(n, n), transform=tr).astype(bool) if seams else np.zeros((n, n), bool)
    bld_m = rasterize([(b, 1) for b in buildings], out_shape=(n, n), transform=tr).astype(bool) if buildings else np.zeros((n, n), bool)
    bands = []
    for r in roles:
        b = np.where(land_m, ground[r], water[r]).astype(np.float32)
        b += rng.normal(0, 0.004, b.shape).astype(np.float32) * np.where(land_m, 4, 1)
        b[bld_m] = 0.45
        b[hull_m] = deck[r]
        b[seam_m] = (deck[r] + water[r]) / 2
        bands.append(np.clip(b, 0, 1) * 10000)
    feats = tuple(Feature("water", f"w{i}", p) for i, p in enumerate(water_polys or ()))
    feats += tuple(Feature("berth", f"b{i}", ln) for i, ln in enumerate(berths))
    aoi = AOI(id="testport", name="Test port", country="KP", kind="port",
              boundary=box(X0, Y0, X0 + size_m, Y0 + size_m), features=feats, crs=UTM)
    return Chip(bands=np.stack(bands), roles=roles, valid=np.ones((n, n), bool), transform=tr,
                crs=UTM, gsd_m=gsd, aoi=aoi, sensor=sensor)


def test_registered_for_ports():
    spec = detectors()["vessel"]
    assert spec.fn is detect_vessels and "port" in spec.kinds and spec.name == "vessels"


def test_open_water_gives_zero():
    for seed in (1, 2):
        res = detect_vessels(make_chip(seed=seed))
        assert res.counts["vessel"] == 0
        assert res.coverage == pytest.approx(1.0)


def test_ships_in_open_water_are_measured():
    ships = [hull(X0 + 150, Y0 + 300, 120, 20, 30), hull(X0 + 420, Y0 + 200, 60, 12, 100)]
    res = detect_vessels(make_chip(hulls=ships, seed=3))
    assert res.counts["vessel"] == 2
    got = sorted(res.detections, key=lambda d: -d.length_m)
    assert got[0].length_m == pytest.approx(120, abs=6) and got[0].width_m == pytest.approx(20, abs=5)
    assert got[0].heading_deg == pytest.approx(30, abs=5)
    assert got[1].length_m == pytest.approx(60, abs=6)
    assert got[1].heading_deg == pytest.approx(100, abs=6)
    assert res.extras["count_by_size"] == {"small_lt30m": 0, "medium_30_100m": 1, "large_gt100m": 1}
    for d in res.detections:
        assert d.geometry.is_valid and 0 < d.score <= 1 and d.cls == "vessel"


def quay_scene(gsd=2.0, seed=4):
    """Land in the north with a quay face along y = Y0 + 400 (east-west);
    three ships moored along it (overlapping the quay by 2 m), a rafted pair
    (two hulls side by side with a seam), and one ship at anchor."""
    quay_y = Y0 + 400
    land = box(X0, quay_y, X0 + 600, Y0 + 600)
    moored = [hull(X0 + 80, quay_y - 9, 100, 22, 90), hull(X0 + 200, quay_y - 9, 110, 22, 90),
              hull(X0 + 330, quay_y - 8, 90, 20, 90)]
    a = hull(X0 + 480, quay_y - 11, 120, 24, 90)
    b = hull(X0 + 480, quay_y - 37, 120, 24, 90)   # outboard, touching a
    seam = box(X0 + 420, quay_y - 26, X0 + 540, quay_y - 22)
    anchor = hull(X0 + 250, Y0 + 150, 140, 24, 45)
    water_poly = box(X0, Y0, X0 + 600, quay_y)
    berth = LineString([(X0, quay_y), (X0 + 600, quay_y)])
    ships = moored + [a, b, anchor]
    return ships, land, seam, water_poly, berth


def test_ships_at_quay_and_rafted_pairs_counted_one_by_one():
    ships, land, seam, water_poly, berth = quay_scene()
    with_polys = make_chip(land=land, hulls=ships, seams=[seam], water_polys=[water_poly], berths=[berth], seed=5)
    res = detect_vessels(with_polys)
    assert res.extras["water_source"].startswith("aoi")
    assert res.counts["vessel"] == len(ships)
    # each true hull has one detection centred on it
    for s in ships:
        near = [d for d in res.detections if d.geometry.centroid.distance(s.centroid) < 10]
        assert len(near) == 1


def test_box_only_aoi_gets_water_from_the_image():
    """No water polygons: water comes from NDWI; ships at anchor (a rafted
    pair among them) are holes in it that are filled, and counted one by one."""
    quay_y = Y0 + 400
    land = box(X0, quay_y, X0 + 600, Y0 + 600)
    a = hull(X0 + 420, Y0 + 250, 120, 24, 90)
    b = hull(X0 + 420, Y0 + 224, 120, 24, 90)
    seam = box(X0 + 360, Y0 + 235, X0 + 480, Y0 + 239)
    ships = [a, b, hull(X0 + 150, Y0 + 150, 140, 24, 45), hull(X0 + 150, Y0 + 330, 70, 14, 80)]
    chip = make_chip(land=land, hulls=ships, seams=[seam], seed=6)
    water, source = water_mask(chip)
    assert source == "image"
    assert water[-10:, :].all() and not water[:50, :].any()
    assert water[chip.shape[0] - 125, 210]          # inside hull a: filled hole
    res = detect_vessels(chip)
    assert res.counts["vessel"] == len(ships)
    for s in ships:
        assert len([d for d in res.detections if d.geometry.centroid.distance(s.centroid) < 10]) == 1


def test_land_never_yields_ships():
    land = box(X0, Y0 + 300, X0 + 600, Y0 + 600)
    buildings = [hull(X0 + 100 + 90 * i, Y0 + 450, 80, 20, 90 if i % 2 else 20) for i in range(5)]
    for polys in (None, [box(X0, Y0, X0 + 600, Y0 + 300)]):
        chip = make_chip(land=land, buildings=buildings, water_polys=polys, seed=7)
        res = detect_vessels(chip)
        assert res.counts["vessel"] == 0
    # all land, no water at all
    chip = make_chip(land=box(X0, Y0, X0 + 600, Y0 + 600), buildings=buildings, seed=8)
    res = detect_vessels(chip)
    assert res.counts["vessel"] == 0


def test_min_length_follows_gsd():
    short = hull(X0 + 300, Y0 + 300, 12, 6, 0)
    chip = make_chip(hulls=[short], seed=9, gsd=2.0)
    assert detect_vessels(chip).counts["vessel"] == 0              # 12 m < 15 m
    assert detect_vessels(chip, min_length_m=8).counts["vessel"] == 1
    # at 10 m a 40 m boat is 4 px long and counts; the limit is in metres
    boat = hull(X0 + 305, Y0 + 300, 40, 10, 0)
    coarse = make_chip(size_m=2000, gsd=10.0, hulls=[boat], seed=10)
    res = detect_vessels(coarse)
    assert res.counts["vessel"] == 1
    assert detect_vessels(coarse, min_length_m=45).counts["vessel"] == 0
    # a 30 m boat spans 3 px at 10 m: not resolved as a hull by default
    # (its length would be the blur), counted when the pixel floor is off
    small = make_chip(size_m=2000, gsd=10.0, hulls=[hull(X0 + 305, Y0 + 305, 30, 10, 0)], seed=10)
    assert detect_vessels(small).counts["vessel"] == 0
    assert detect_vessels(small, min_length_px=0).counts["vessel"] == 1


def sar_chip(gsd=10.0, size=400, targets=(), enl=4.0, seed=11, land_rows=0):
    rng = np.random.default_rng(seed)
    sigma_w = 0.01
    x = rng.gamma(enl, sigma_w / enl, (size, size)).astype(np.float32)
    if land_rows:
        x[:land_rows] = rng.gamma(2.0, 0.15 / 2.0, (land_rows, size))
    tr = Affine(gsd, 0, X0, 0, -gsd, Y0 + size * gsd)
    for r, c, L, W in targets:
        x[r:r + L, c:c + W] = rng.gamma(enl, 1.0 / enl, (L, W)) * 1.0 + 0.3
    aoi = AOI(id="sarport", name="SAR port", country="KP", kind="port",
              boundary=box(X0, Y0, X0 + size * gsd, Y0 + size * gsd), crs=UTM)
    return Chip(bands=x[None], roles=("vv",), valid=np.ones((size, size), bool), transform=tr, crs=UTM,
                gsd_m=gsd, aoi=aoi, sensor="sar")


def test_sar_cfar_finds_bright_targets_in_speckle():
    targets = [(50, 50, 12, 3), (200, 80, 3, 15), (300, 300, 6, 2), (120, 250, 20, 4), (320, 150, 4, 4)]
    res = detect_vessels(sar_chip(targets=targets))
    assert res.extras["mode"] == "sar"
    assert res.counts["vessel"] == len(targets)
    big = max(res.detections, key=lambda d: d.length_m)
    assert big.length_m == pytest.approx(200, abs=30)
    # empty speckle: (almost) no false alarms at pfa 1e-6 over 160 000 px
    assert detect_vessels(sar_chip(seed=12)).counts["vessel"] <= 1


def test_sar_land_is_not_water():
    chip = sar_chip(targets=[(300, 200, 10, 3)], land_rows=150, seed=13)
    res = detect_vessels(chip)
    assert res.counts["vessel"] == 1
    assert res.extras["water_source"] == "image"


def test_sar_in_decibels_is_converted():
    chip = sar_chip(targets=[(100, 100, 10, 3)], seed=14)
    chip.bands = (10 * np.log10(np.maximum(chip.bands, 1e-6))).astype(np.float32)
    assert detect_vessels(chip).counts["vessel"] == 1


def test_local_background_is_robust_to_ships():
    rng = np.random.default_rng(15)
    x = rng.normal(10.0, 1.0, (256, 256)).astype(np.float32)
    x[100:110, 50:150] = 100.0
    bg, sg = local_background(x, np.ones_like(x, bool), 64)
    assert np.allclose(np.median(bg), 10.0, atol=0.2)
    assert 0.8 < np.median(sg) < 1.3


def test_coverage_counts_only_valid_water():
    ships, land, seam, water_poly, berth = quay_scene()
    chip = make_chip(land=land, water_polys=[water_poly], seed=16)
    chip.valid[:, : chip.shape[1] // 2] = False
    res = detect_vessels(chip)
    assert res.coverage == pytest.approx(0.5, abs=0.02)


def test_bad_options_are_refused():
    chip = make_chip(seed=17)
    with pytest.raises(InputError):
        detect_vessels(chip, pfa=2.0)
    with pytest.raises(InputError):
        detect_vessels(chip, min_length_m=0)


def test_size_classes():
    assert size_class(10) == "small_lt30m" and size_class(50) == "medium_30_100m" and size_class(250) == "large_gt100m"


def test_fine_chips_are_worked_near_2m():
    ship = hull(X0 + 150, Y0 + 150, 60, 12, 60)
    chip = make_chip(size_m=300, gsd=1.0, hulls=[ship], seed=18)
    res = detect_vessels(chip)
    assert res.extras["gsd_m"] == 2.0 and res.counts["vessel"] == 1
    assert res.detections[0].length_m == pytest.approx(60, abs=5)
    native = detect_vessels(chip, work_gsd_m=0)
    assert native.extras["gsd_m"] == 1.0 and native.counts["vessel"] == 1


def test_breakwater_and_faint_texture_are_not_ships_at_10m():
    # a 1.2 km breakwater 15 m wide off a shore (mixed pixels at 10 m: a
    # long thin line of "bright water"), a faint slick, and one real ship
    shore = box(X0, Y0 + 2400, X0 + 3000, Y0 + 3000)
    mole = box(X0 + 600, Y0 + 1500, X0 + 1800, Y0 + 1515)
    ship = hull(X0 + 1500, Y0 + 700, 160, 26, 70)
    chip = make_chip(size_m=3000, gsd=10.0, land=shore.union(mole), hulls=[ship], seed=21)
    # the slick: 2 % reflectance above the water in every band, 300 x 40 m
    n = chip.shape[0]
    tr = chip.transform
    slick = rasterize([(hull(X0 + 800, Y0 + 1000, 300, 40, 20), 1)], out_shape=(n, n), transform=tr).astype(bool)
    chip.bands[:, slick] += 200.0
    res = detect_vessels(chip)
    assert res.counts["vessel"] == 1
    c = res.detections[0].geometry.centroid
    assert abs(c.x - (X0 + 1500)) < 30 and abs(c.y - (Y0 + 700)) < 30


def moored_quay_chip(n_hulls=3, seed=22):
    """A 10 m (Sentinel-2-like) box-only chip: land north of a straight
    quay, hulls moored alongside it on the quay's side of the water's
    edge, painted decks redder in NIR than the quay (NDWI well below it)."""
    quay_y = Y0 + 1500
    chip = make_chip(size_m=3000, gsd=10.0, land=box(X0, quay_y, X0 + 3000, Y0 + 3000), seed=seed)
    hulls = [box(X0 + 300 + 700 * i, quay_y, X0 + 450 + 700 * i, quay_y + 30) for i in range(n_hulls)]
    if hulls:
        m = rasterize([(h, 1) for h in hulls], out_shape=chip.shape, transform=chip.transform).astype(bool)
        for role, v in (("red", 0.20), ("green", 0.08), ("blue", 0.07), ("nir", 0.30)):
            chip.bands[chip.roles.index(role), m] = v * 10000
    return chip, hulls


def test_hulls_moored_alongside_a_box_only_quay_are_counted():
    chip, hulls = moored_quay_chip()
    water, source = water_mask(chip)
    assert source == "image"
    # to NDWI the hulls are land ...
    c, r = ~chip.transform * (X0 + 375, Y0 + 1515)
    assert not water[int(r), int(c)]
    # ... found along the water's edge, one by one, measured (the rule
    # stage: the learned classifier knows real Sentinel-2 quays, not this one)
    res = detect_vessels(chip, classifier=False)
    assert res.counts["vessel"] == len(hulls)
    for h in hulls:
        near = [d for d in res.detections if d.geometry.centroid.distance(h.centroid) < 20]
        assert len(near) == 1 and near[0].properties.get("moored")
        assert near[0].length_m == pytest.approx(150, abs=20)
    # the same quay without ships: nothing
    empty, _ = moored_quay_chip(n_hulls=0)
    assert detect_vessels(empty).counts["vessel"] == 0
    assert detect_vessels(empty, classifier=False).counts["vessel"] == 0
    assert detect_vessels(chip, moored=False, classifier=False).counts["vessel"] == 0


def test_breakwater_in_dashes_is_not_ships():
    """An offshore breakwater 15 m wide at 10 m pixels, its brightness
    broken every 100 m (wave wash, mixed pixels): the dashes continue the
    line beyond both ends, a hull ends at bow and stern."""
    ship = hull(X0 + 1500, Y0 + 700, 160, 26, 70)
    chip = make_chip(size_m=3000, gsd=10.0, hulls=[ship], seed=23)
    n = chip.shape[0]
    segs = [box(X0 + 500 + 100 * i, Y0 + 1800, X0 + 580 + 100 * i, Y0 + 1815) for i in range(15)]
    gaps = [box(X0 + 580 + 100 * i, Y0 + 1800, X0 + 600 + 100 * i, Y0 + 1815) for i in range(14)]
    for shapes, v in ((segs, 0.25), (gaps, 0.12)):
        m = rasterize([(g, 1) for g in shapes], out_shape=(n, n), transform=chip.transform).astype(bool)
        chip.bands[:, m] = v * 10000
    res = detect_vessels(chip)
    assert res.counts["vessel"] == 1
    c = res.detections[0].geometry.centroid
    assert abs(c.x - (X0 + 1500)) < 30 and abs(c.y - (Y0 + 700)) < 30


def test_short_hull_moored_alongside_a_long_one_is_split_off():
    """A 40 m boat touching the side of a 120 m ship near its stern: the
    pair is one long object with a wider step; it counts as two."""
    ship = hull(X0 + 300, Y0 + 300, 120, 20, 90)
    boat = hull(X0 + 330, Y0 + 316, 40, 12, 90)
    res = detect_vessels(make_chip(hulls=[ship, boat], seed=24))
    assert res.counts["vessel"] == 2
    got = sorted(res.detections, key=lambda d: d.length_m)
    assert got[0].length_m == pytest.approx(40, abs=8) and got[1].length_m == pytest.approx(120, abs=8)


def test_the_learned_stage_runs_where_it_was_trained_sentinel2_like_pixels():
    coarse, _ = moored_quay_chip()                      # 10 m pixels
    assert detect_vessels(coarse).extras.get("classifier") == "vessel_gbt_s2"
    assert "classifier" not in detect_vessels(coarse, classifier=False).extras
    fine = make_chip(size_m=600, gsd=2.0, hulls=[], seed=5)
    assert "classifier" not in detect_vessels(fine).extras
    res = detect_vessels(coarse)
    assert res.detector == "vessels" and res.version == detectors()["vessel"].version


def test_blobs_as_wide_as_long_are_not_hulls_at_fine_pixels():
    # at 3 m a 60 m x 50 m bright patch (a cloud puff, glint) is no hull;
    # a 60 m x 12 m hull beside it is; with the test off both count
    blob = hull(X0 + 150, Y0 + 300, 60, 50, 30)
    ship = hull(X0 + 420, Y0 + 300, 60, 12, 30)
    chip = make_chip(gsd=3.0, hulls=[blob, ship], seed=5)
    res = detect_vessels(chip)
    assert res.counts["vessel"] == 1
    assert res.detections[0].geometry.centroid.distance(ship.centroid) < 10
    assert detect_vessels(chip, max_beam_ratio=0).counts["vessel"] == 2


def test_an_islet_is_not_filled_into_the_water_nor_counted():
    # a rocky islet 240 x 160 m in a box-only AOI's water: NDWI makes it land,
    # and a hole wider than any hull stays land (a hull-sized hole is filled)
    from monitor.detect.water import image_water

    islet = box(X0 + 100, Y0 + 300, X0 + 340, Y0 + 460)
    chip = make_chip(size_m=900.0, gsd=8.0, land=islet, seed=31)
    wm = image_water(chip)
    c, r = ~chip.transform * (X0 + 220, Y0 + 380)
    assert not wm[int(r), int(c)]
    assert detect_vessels(chip, classifier=False).counts["vessel"] == 0
    # a hull-sized "land" hole (a moored pontoon 80 x 24 m) is given back
    pontoon = box(X0 + 600, Y0 + 600, X0 + 680, Y0 + 624)
    wm2 = image_water(make_chip(size_m=900.0, gsd=8.0, land=pontoon, seed=31))
    c, r = ~make_chip(size_m=900.0, gsd=8.0).transform * (X0 + 640, Y0 + 612)
    assert wm2[int(r), int(c)]


def test_soft_edged_puffs_are_not_hulls_but_sharp_hulls_are():
    # at 3 m: a thin cloud puff (brightness fading in over ~40 m) beside a hull
    chip = make_chip(size_m=600.0, gsd=3.0, hulls=[hull(X0 + 150, Y0 + 300, 90, 16, 60)], seed=32)
    n = chip.shape[0]
    yy, xx = np.mgrid[0:n, 0:n] * 3.0
    puff = np.exp(-(((xx - 430) / 40.0) ** 2 + ((yy - 300) / 16.0) ** 2))
    chip.bands[:] += (0.02 * 10000 * puff).astype(np.float32)[None]
    res = detect_vessels(chip)
    assert res.counts["vessel"] == 1
    assert res.detections[0].length_m == pytest.approx(90, abs=8)
    # the test off: the puff is counted as well
    assert detect_vessels(chip, edge_sharpness=0).counts["vessel"] == 2


def test_a_moored_hull_with_a_broken_deck_is_one_hull():
    # a 250 m hull alongside a box-only quay whose deck reads as three pieces
    # (hatch covers as grey as the quay, one pixel wide): one hull, not none
    chip, _ = moored_quay_chip(n_hulls=0, seed=23)
    quay_y = Y0 + 1500
    h = box(X0 + 1000, quay_y, X0 + 1250, quay_y + 40)
    m = rasterize([(h, 1)], out_shape=chip.shape, transform=chip.transform).astype(bool)
    for role, v in (("red", 0.20), ("green", 0.08), ("blue", 0.07), ("nir", 0.30)):
        chip.bands[chip.roles.index(role), m] = v * 10000
    for x in (X0 + 1080, X0 + 1170):    # the hatch lines across the deck
        gap = rasterize([(box(x, quay_y, x + 10, quay_y + 40), 1)], out_shape=chip.shape,
                        transform=chip.transform).astype(bool)
        for role in ("red", "green", "blue", "nir"):
            chip.bands[chip.roles.index(role), gap] = GROUND[role] * 10000
    res = detect_vessels(chip, classifier=False)
    assert res.counts["vessel"] == 1
    assert res.detections[0].properties.get("moored")
    assert res.detections[0].length_m == pytest.approx(250, abs=25)


def hazy_quay_chip(seed, with_hull=True):
    """A 3 m chip: land north of a quay with a berth line, a 100 x 20 m hull
    moored at it (a dim deck, 0.4 of the full deck contrast, and a bright
    superstructure aft), under a thin patchy cloud (a smooth brightness field
    some 20 m across, up to ~0.1 reflectance) that raises the water's noise
    so that the hull's contrast z-score is high only at its superstructure."""
    from scipy import ndimage as ndi

    quay_y = Y0 + 400
    chip = make_chip(gsd=3.0, land=box(X0, quay_y, X0 + 600, Y0 + 600), water_polys=[box(X0, Y0, X0 + 600, quay_y)],
                     berths=[LineString([(X0, quay_y), (X0 + 600, quay_y)])], seed=seed)
    h = hull(X0 + 300, quay_y - 9, 100, 20, 90)
    if with_hull:
        sup = hull(X0 + 265, quay_y - 9, 15, 16, 90)
        m = rasterize([(h, 1)], out_shape=chip.shape, transform=chip.transform).astype(bool)
        s = rasterize([(sup, 1)], out_shape=chip.shape, transform=chip.transform).astype(bool)
        for i, r in enumerate(chip.roles):
            chip.bands[i][m] = (WATER[r] + 0.4 * (DECK[r] - WATER[r])) * 10000
            chip.bands[i][s] = DECK[r] * 10000
    f = ndi.gaussian_filter(np.random.default_rng(100 + seed).normal(size=chip.shape), 6.0)
    chip.bands += (0.03 * np.abs(f / f.std()) * 10000).astype(np.float32)[None]
    return chip, h


def test_a_moored_hull_under_thin_cloud_is_counted_at_fine_pixels():
    # the cloud scales the hull's z-score down: its body averages under
    # k_high, its superstructure is far above. At 3 m the shore's rim is told
    # by the shore-ramp and edge tests, not by a z level over the whole body
    for seed in (1, 5, 6):
        chip, h = hazy_quay_chip(seed)
        res = detect_vessels(chip)
        assert res.counts["vessel"] == 1, seed
        d = res.detections[0]
        assert d.geometry.intersection(h).area / d.geometry.union(h).area >= 0.5
        assert d.length_m == pytest.approx(100, abs=8)
        # the same quay and cloud without the hull: nothing
        assert detect_vessels(hazy_quay_chip(seed, with_hull=False)[0]).counts["vessel"] == 0


def test_a_rafted_hull_covering_most_of_the_berthed_one_is_split_off_at_fine_pixels():
    # a 90 m hull rafted outboard of a 120 m one at a quay, touching it (no
    # seam): the pair is wide over three quarters of its length, so the step
    # is measured from the narrow part (the long hull's overhang)
    quay_y = Y0 + 400
    kw = dict(gsd=3.0, land=box(X0, quay_y, X0 + 600, Y0 + 600), water_polys=[box(X0, Y0, X0 + 600, quay_y)],
              berths=[LineString([(X0, quay_y), (X0 + 600, quay_y)])])
    inner = hull(X0 + 300, quay_y - 9, 120, 18, 90)
    outer = hull(X0 + 310, quay_y - 25, 90, 14, 90)
    for seed in (1, 2):
        res = detect_vessels(make_chip(hulls=[inner, outer], seed=seed, **kw))
        assert sorted(round(d.length_m / 10) * 10 for d in res.detections) == [90, 120], seed
        for h in (inner, outer):
            assert max(d.geometry.intersection(h).area / d.geometry.union(h).area for d in res.detections) >= 0.6
        # the berthed hull alone stays one hull
        alone = detect_vessels(make_chip(hulls=[inner], seed=seed, **kw))
        assert alone.counts["vessel"] == 1 and alone.detections[0].length_m == pytest.approx(120, abs=6)
