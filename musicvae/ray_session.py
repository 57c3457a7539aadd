"""Ray for every command that uses it (a sweep, ``extract``, ``assign``): a local Ray started, or a cluster joined, its output
following the console's settings (:mod:`musicvae.console`)."""

from __future__ import annotations

import os

from musicvae import console


def init_ray(address: str | None = None) -> bool:
    """Start a local Ray, or join a cluster (``address``, else RAY_ADDRESS); True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        address=address or os.environ.get("RAY_ADDRESS"),
        log_to_driver=True,  # a trial's errors and warnings reach the console; libraries' chatter is lowered at its source
        logging_level=console.ray_logging_level(),
        runtime_env={"env_vars": console.worker_env()},  # -v reaches the trials on every node
        include_dashboard=False,
    )
    console.quiet_libraries()
    return True
