"""A region's composite: every scene warped onto it and its observations composited, in manifest
order. The one recipe of a block's part (:mod:`basemap.pipeline.block_task`) and of `basemap
evaluate`."""

from __future__ import annotations

from collections.abc import Callable

from basemap.grid import Region
from basemap.mosaic.composite import Composite, compositor
from basemap.read.scenes import Observation, ReadSettings, observations
from basemap.read.traffic import Traffic
from basemap.stac.scene import Scene


def composite_region(scenes: tuple[Scene, ...] | list[Scene], region: Region,
                     read_settings: ReadSettings, method: str, feather: int,
                     skipped: list[str] | None = None,
                     seen: Callable[[Observation], None] | None = None,
                     traffic: Traffic | None = None) -> tuple[Composite, int]:
    """(the composite of ``region``, the number of scenes with data in it).

    Args:
        scenes: in manifest order.
        region: chunk-aligned global pixels, padded as the quality needs.
        read_settings: the warp settings.
        method: compositing method (:data:`basemap.mosaic.composite.METHOD_NAMES`).
        feather: footprint-edge ramp of the observations' quality (px).
        skipped: when given, scenes with a missing asset are skipped and their ids appended.
        seen: called with each observation once it is composited.
        traffic: when given, what the reads cost is added to it.
    """
    comp = compositor(method, (region.height, region.width))
    used = 0
    for obs in observations(scenes, region, read_settings, feather, skipped, traffic):
        comp.add(obs.reflectance, obs.valid, obs.accepted, obs.quality,
                 obs.region.slices((region.x0, region.y0)))
        if seen is not None:
            seen(obs)
        used += 1
    return comp.result(), used
