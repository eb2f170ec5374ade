"""What a plan checks between its stages and against runs already there: the recipes of the selection's and
the final runs an earlier command trained (known before the searches find their cells), and the test hold-out
of one's own images that the searches must share with the trainings."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from .. import config as run_config
from .spec import ExperimentOptions, ExperimentSpec, check_existing_run


def check_recipes_of_runs(parent: Path, config: dict) -> None:
    """ExperimentMismatchError when a run under ``parent`` (``seed-*``) was trained with another recipe than
    ``config``, its cell and seed aside."""
    if parent.is_dir():
        for where in sorted(parent.glob("seed-*")):
            check_existing_run(where, config, ignore=("arch", "genotype", "seed"))


# Fields that say which of one's own images are held out as the test split (when the data has no test/ or val/):
# the searches take the training's values, so that no search sees an image the trained cells are tested on.
TEST_HOLD_OUT_FIELDS = ("split_seed", "test_portion")


def searches_hold_out(spec: ExperimentSpec, options: ExperimentOptions, train_base: dict,
                      defaults: dict) -> Dict[str, Any]:
    """The training's test hold-out fields for the searches of one's own images (none for the paper's datasets);
    ConfigError when a --search-<field> asks for another hold-out than the training's. ``defaults``: the training
    recipe's field values."""
    if spec.search_dataset != "images":
        return {}
    fields = {k: train_base.get(k, defaults[k]) for k in TEST_HOLD_OUT_FIELDS}
    for k, value in fields.items():
        given = options.search_overrides.get(k)
        if given is not None and given != value:
            option = k.replace("_", "-")
            raise run_config.ConfigError(f"--search-{option} {given} differs from the training's {value}: the searches "
                                         f"must leave out the test images the trainings hold out; give --{option} "
                                         "alone (the searches take it)")
    return fields
