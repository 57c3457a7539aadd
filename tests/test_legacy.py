"""The module names before the stage subpackages (musicvae.legacy): what an older version saved still loads."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_pipeline import FAST, table  # noqa: F401 - the fixture

from musicvae import legacy
from musicvae.config.params import TrialParams
from musicvae.serving.pipeline import load_pipeline
from musicvae.trial import run_and_save

# What a sweep's tuner.pkl named, from a sweep started at 821154a (the last commit before the move), killed, and
# resumed after it; and the name the callback had before it moved to trial_tracking.py.
PICKLED = [
    ("musicvae.search", "SweepSearch", "musicvae.tune.search"),
    ("musicvae.params", "Range", "musicvae.config.params"),
    ("musicvae.sweep", "trial_name", "musicvae.tune.sweep"),
    ("musicvae.trial_tracking", "MLflowTrialCallback", "musicvae.tracking.trial_tracking"),
    ("musicvae.progress", "SweepProgress", "musicvae.tune.progress"),
    ("musicvae.tracking", "MLflowTrialCallback", "musicvae.tracking.trial_tracking"),
]


@pytest.mark.parametrize("old", sorted(legacy.MOVED))
def test_an_old_module_name_imports_the_module_it_became(old: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(legacy.MOVED[old])


def test_a_moved_packages_submodule_loads_once_whichever_name_comes_first() -> None:
    code = (
        "import sys, musicvae.features.audio as old, musicvae.data.features.audio as new; "
        "print(old is new, sorted(k for k in sys.modules if k.endswith('features.audio')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True ['musicvae.data.features.audio', 'musicvae.features.audio']"


@pytest.mark.parametrize("old, name, new", PICKLED, ids=[f"{m}.{n}" for m, n, _ in PICKLED])
def test_what_tune_pickled_before_the_move_unpickles(old: str, name: str, new: str) -> None:
    found = pickle.loads(f"c{old}\n{name}\n.".encode())  # GLOBAL: how a pickle names a class or function
    assert found is getattr(importlib.import_module(new), name)


def test_a_submodule_name_is_not_taken_for_an_old_name() -> None:
    """``from musicvae.tracking import server`` imports the submodule; the old-name lookup must not import Ray on the way."""
    code = "import sys; from musicvae.tracking import server, runs; print('ray' in sys.modules, server.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False musicvae.tracking.server"


def test_a_champion_logged_before_the_move_loads(table, tmp_path: Path) -> None:  # noqa: F811
    """A model whose MLmodel names the old loader module loads through both our loader and MLflow's, in a fresh interpreter."""
    path, data = table
    result, _ = run_and_save(TrialParams(model="pca", latent_dim=4, clusterer="kmeans"), data, tmp_path, FAST)
    mlmodel = tmp_path / "pipeline" / "MLmodel"
    text = mlmodel.read_text()
    assert "loader_module: musicvae.serving.pipeline" in text
    mlmodel.write_text(text.replace("loader_module: musicvae.serving.pipeline", "loader_module: musicvae.pipeline"))
    frame = pd.read_csv(path).drop(columns=["genre"])
    np.testing.assert_array_equal(load_pipeline(str(tmp_path / "pipeline")).predict(frame)["cluster"].to_numpy(np.int64), result.clusters)
    frame.to_csv(tmp_path / "frame.csv", index=False)
    code = (
        "import sys, mlflow, pandas as pd; "
        f"print(list(mlflow.pyfunc.load_model({str(tmp_path / 'pipeline')!r}).predict(pd.read_csv({str(tmp_path / 'frame.csv')!r}))['cluster'].astype(int)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == str([int(c) for c in result.clusters])
