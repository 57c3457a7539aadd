"""ray_cluster.yaml must pass Ray's own cluster-config validation, so a typo fails CI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "ray_cluster.yaml"


def validate(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))


def test_cluster_yaml_is_valid() -> None:
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    validate(config)
    assert config["head_node_type"] in config["available_node_types"]
    # Nothing exposed publicly: the dashboard binds to loopback and is reached over SSH.
    assert any("--dashboard-host=127.0.0.1" in cmd for cmd in config["head_start_ray_commands"])


def test_a_typo_fails_validation() -> None:
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    config["max_wokers"] = config.pop("max_workers")
    with pytest.raises(Exception, match="max_wokers"):
        validate(config)
