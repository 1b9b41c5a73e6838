"""Ray mode's configuration, without a cluster (tests/test_e2e_ray.py runs one): the serve
config file is valid for Ray Serve, the deployment options follow the settings, and the
autoscaling policy sizes the deployment by queued windows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import ServeDeploySchema

from app.config import Settings
from app.serve.autoscaling import QueuedWindowsPolicy
from app.serve.deployments import transcription_options

ROOT = Path(__file__).resolve().parents[2]


def test_the_serve_config_file_is_valid() -> None:
    config = ServeDeploySchema.model_validate(
        yaml.safe_load((ROOT / "deploy/serve.yaml").read_text())
    )
    (app,) = config.applications
    assert app.import_path == "app.serve.deployments:build_app"
    assert {d.name for d in app.deployments} == {"Transcription", "Ingress"}


def test_options_follow_the_settings() -> None:
    fixed = transcription_options(
        Settings(_env_file=None, ray_replicas=3, ray_gpus_per_replica=1, ray_cpus_per_replica=4)
    )
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert fixed["ray_actor_options"] == {"num_cpus": 4, "num_gpus": 1}
    scaled = transcription_options(Settings(_env_file=None, ray_replicas=1, ray_max_replicas=4))
    assert "num_replicas" not in scaled
    config = AutoscalingConfig.model_validate(scaled["autoscaling_config"])  # Serve accepts it
    assert (config.min_replicas, config.max_replicas) == (1, 4)


@dataclass
class Context:
    queued: dict[str, float]
    current_num_replicas: int
    capacity_adjusted_min_replicas: int = 1
    capacity_adjusted_max_replicas: int = 4
    policy_state: dict[str, Any] = field(default_factory=dict)

    @property
    def aggregated_metrics(self) -> dict[str, dict[str, float]]:
        return {"queued_windows": self.queued}


def test_the_policy_scales_on_queued_windows() -> None:
    policy = QueuedWindowsPolicy(target=64)
    assert policy(Context({"a": 100.0, "b": 150.0}, 2))[0] == 4  # 250 windows / 64
    assert policy(Context({"a": 1000.0}, 2))[0] == 4  # capped at the maximum
    assert policy(Context({"a": 30.0, "b": 20.0}, 2))[0] == 1  # 50 windows: one is enough
    assert policy(Context({"a": 0.0, "b": 0.0}, 3))[0] == 2  # idle: one fewer at a time
    assert policy(Context({}, 1))[0] == 1  # never below the minimum
