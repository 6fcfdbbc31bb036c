"""SimEarth: the embedded simulated world (Sentinel-2 L2A-like patches from real maps and real spectra).

SimEarth is a simulation. Land-cover composition, climate and biome come from real maps (``geodiv.geo``),
reflectance from measured spectra (earthlib) and published typical values, the layout from documented random
processes; see docs/simearth.md.
"""

from geodiv.simearth.layout import IGBP_NAMES, MATERIALS, SIM_CLASSES
from geodiv.simearth.preview import write_patch_npz, write_preview
from geodiv.simearth.realism import format_realism_check, realism_check
from geodiv.simearth.structures import ARRANGEMENT_GROUPS, SETTLEMENTS, STRUCTURES
from geodiv.simearth.tasks import (
    COMPOSITION_TASKS,
    FOREST_TYPES,
    LANDCOVER_CLASSES,
    STRUCTURE_TASKS,
    TASK_SPECS,
    TASK_STRUCTURES,
    TASKS,
    task_target,
)
from geodiv.simearth.world import (
    Patch,
    SimConfig,
    lookup,
    patch_rng,
    render_patch,
    simulate_patch,
    simulate_patches,
)

__all__ = [
    "ARRANGEMENT_GROUPS",
    "COMPOSITION_TASKS",
    "FOREST_TYPES",
    "SETTLEMENTS",
    "STRUCTURES",
    "STRUCTURE_TASKS",
    "TASK_STRUCTURES",
    "IGBP_NAMES",
    "LANDCOVER_CLASSES",
    "MATERIALS",
    "SIM_CLASSES",
    "TASKS",
    "TASK_SPECS",
    "Patch",
    "SimConfig",
    "format_realism_check",
    "lookup",
    "patch_rng",
    "realism_check",
    "render_patch",
    "simulate_patch",
    "simulate_patches",
    "task_target",
    "write_patch_npz",
    "write_preview",
]
