import numpy as np
import pytest

from geodiv.errors import InputError
from geodiv.evaluate.regions import plan_regions


def test_plan_has_global_continents_and_matrix_with_empty_test_subset():
    train = np.array(["Africa", "Europe", "Africa", ""])
    val = np.array(["Europe"])
    test = np.array(["Africa", "", "Africa"])
    plan = plan_regions(train, val, test, by="continent")
    names = [r for r, _ in plan.test_regions]
    assert names == ["global", "Africa", "Europe"]
    assert len(dict(plan.test_regions)["Europe"]) == 0  # reported with n = 0
    heads = {h.train_region: h for h in plan.heads}
    assert set(heads) == {"global", "Africa", "Europe"}
    assert list(heads["Africa"].train_idx) == [0, 2] and len(heads["Africa"].val_idx) == 0
    assert list(heads["Europe"].val_idx) == [0]
    assert len(plan_regions(train, val, test, by="continent", matrix=False).heads) == 1
    assert len(plan_regions(train, val, test, by=None).test_regions) == 1


def test_plan_without_locations_is_a_clear_error():
    empty = np.array(["", ""])
    with pytest.raises(InputError, match="no location"):
        plan_regions(empty, empty, empty, by="continent", task_name="t")
