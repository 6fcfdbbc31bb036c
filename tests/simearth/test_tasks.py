import numpy as np
import pytest

from geodiv.errors import InputError
from geodiv.simearth import tasks
from geodiv.simearth.layout import C


def test_task_specs():
    assert tasks.COMPOSITION_TASKS == ("landcover", "treecover", "foresttype", "builtup")
    assert tasks.TASKS == tasks.COMPOSITION_TASKS + ("scene", "settlement")
    assert tasks.TASK_SPECS["scene"]["type"] == "classification" and len(tasks.TASK_SPECS["scene"]["classes"]) >= 20
    assert tasks.TASK_SPECS["settlement"]["type"] == "regression"
    assert tasks.TASK_SPECS["landcover"]["type"] == "classification"
    assert 9 <= len(tasks.TASK_SPECS["landcover"]["classes"]) <= 12
    assert tasks.TASK_SPECS["foresttype"]["type"] == "segmentation"
    assert tasks.TASK_SPECS["treecover"]["type"] == tasks.TASK_SPECS["builtup"]["type"] == "regression"


def test_targets_on_a_known_map():
    m = np.full((10, 10), C["cropland"], np.uint8)
    m[:3] = C["needleleaf_evergreen"]
    m[3, :5] = C["mixed_forest"]
    m[9] = C["road"]
    m[8, :4] = C["built_up"]
    assert tasks.LANDCOVER_CLASSES[tasks.task_target("landcover", m)] == "cropland"
    assert tasks.task_target("treecover", m) == pytest.approx(0.35)
    assert tasks.task_target("builtup", m) == pytest.approx(0.14)
    ft = tasks.task_target("foresttype", m)
    assert ft.dtype == np.uint8 and ft.shape == (10, 10)
    assert tasks.FOREST_TYPES[ft[0, 0]] == "needleleaf_evergreen"
    assert tasks.FOREST_TYPES[ft[3, 0]] == "mixed"
    assert tasks.FOREST_TYPES[ft[5, 5]] == "non_forest"


def test_bad_task_input():
    m = np.zeros((4, 4), np.uint8)
    with pytest.raises(InputError, match="unknown task"):
        tasks.task_target("population", m)
    with pytest.raises(InputError):
        tasks.task_target("treecover", np.zeros((4, 4), np.int64))
    with pytest.raises(InputError):
        tasks.task_target("treecover", np.full((4, 4), 200, np.uint8))
