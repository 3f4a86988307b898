"""Synthetic but realistic scenes with exact ground truth.

Optical rail yards (:func:`render_rail_scene`), ports in optical or SAR
(:func:`render_port_scene`), written as COG + STAC item + truth GeoJSON
(:func:`write_scene`), and multi-year archives whose counts follow a
scenario (:func:`generate_archive`, :func:`load_scenario`).

All geometry of a scene is in its AOI's UTM zone (metres); the truth
GeoJSON on disk is in WGS84.
"""

from monitor.synth.scene import SynthScene, TruthObject
from monitor.synth.rail import CAR_SPECS, render_rail_scene, track_capacity
from monitor.synth.port import render_port_scene
from monitor.synth.writer import truth_geojson, write_scene
from monitor.synth.demo import demo_port_aoi, demo_rail_aoi


def render_scene(aoi, **kw) -> SynthScene:
    """Render a rail or port scene according to the AOI's kind."""
    from monitor.aoi import load_aoi
    a = load_aoi(aoi)
    if a.is_port:
        kw.pop("cars", None)
        return render_port_scene(a, **kw)
    kw.pop("ships", None)
    kw.pop("lengths", None)
    return render_rail_scene(a, **kw)


def __getattr__(name):  # lazy: archive/scenario import the renderers
    if name in ("generate_archive", "archive_plan"):
        from monitor.synth import archive
        return getattr(archive, name)
    if name in ("load_scenario", "Scenario", "default_scenario"):
        from monitor.synth import scenario
        return getattr(scenario, name)
    raise AttributeError(name)


__all__ = ["SynthScene", "TruthObject", "render_rail_scene", "render_port_scene", "render_scene", "write_scene",
           "truth_geojson", "track_capacity", "CAR_SPECS", "demo_rail_aoi", "demo_port_aoi",
           ]
