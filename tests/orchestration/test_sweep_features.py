"""The sweep's inputs: a fold to test on that has no clip in the dataset is a clear error.
(The features themselves are exercised end to end by every sweep test.)"""

from __future__ import annotations

import dataclasses

import pytest

from orchestration.plan import SweepError
from orchestration.sweep_features import check_folds_present


def test_a_fold_without_clips_is_named_with_the_folds_there_are(tiny_dataset):
    nine = dataclasses.replace(tiny_dataset, table=tiny_dataset.table[tiny_dataset.table["fold"] != 10])
    check_folds_present(nine, (1, 9))  # present: no error
    with pytest.raises(SweepError) as info:
        check_folds_present(nine, (9, 10))
    assert str(info.value) == (f"folds [10] have no clips in {tiny_dataset.root}; "
                               "choose among [1, 2, 3, 4, 5, 6, 7, 8, 9]")
