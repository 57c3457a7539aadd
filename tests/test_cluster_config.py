"""ray_cluster.yaml must pass Ray's own cluster-config validation, so a typo fails CI, and keep its promises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "ray_cluster.yaml"


def validate(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))


@pytest.fixture
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_is_valid(config: dict) -> None:
    validate(config)
    assert config["head_node_type"] in config["available_node_types"]
    assert config["available_node_types"]["ray.worker.gpu"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"


def test_nothing_is_exposed_and_token_authentication_is_on(config: dict) -> None:
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head  # reached over SSH with `ray dashboard`, never a public port
    for command in [*config["head_start_ray_commands"], *config["worker_start_ray_commands"]]:
        if "ray start" in command:
            assert command.startswith("RAY_AUTH_MODE=token ")
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"  # every node shares the token


def test_every_node_installs_pinned_versions(config: dict) -> None:
    installs = " ".join(c for c in config["setup_commands"] if "pip install" in c)
    assert re.search(r'"ray\[[a-z,]+\]==[\d.]+"', installs) and re.search(r'"torch==[\d.]+"', installs)
    assert config["file_mounts"]["~/musicvae"] == "." and "~/musicvae" in installs  # musicvae from the mounted commit


def test_a_typo_fails_validation(config: dict) -> None:
    config["max_wokers"] = config.pop("max_workers")
    with pytest.raises(Exception, match="max_wokers"):
        validate(config)
