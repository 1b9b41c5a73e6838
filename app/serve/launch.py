"""`python -m app.serve.launch` (entrypoint.sh with SERVE_MODE=ray): join the Ray cluster at
RAY_ADDRESS or start a local one, run the application (app/serve/deployments.py) with Serve's
HTTP proxy on HOST:PORT, and keep it up until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import threading

# Replicas run in this same environment (this checkout, its .venv). Started under `uv run`
# (entrypoint.sh), Ray would otherwise copy the checkout and build a new uv environment for
# every worker from the `uv run` command line, without our extras: Ray itself went missing.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

import ray
from ray import serve

from app.serve.deployments import APP_NAME, CHECKOUT, build_app, replica_settings

log = logging.getLogger("app.serve")


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = replica_settings()
    host, port = os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "9001"))
    # Replicas import this checkout (on other machines: the same path, same environment).
    pythonpath = os.pathsep.join(p for p in (str(CHECKOUT), os.environ.get("PYTHONPATH")) if p)
    ray.init(
        address=settings.ray_address,  # None: a local cluster (Ray also reads RAY_ADDRESS)
        namespace=APP_NAME,
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
        include_dashboard=False,
    )
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(), name=APP_NAME, route_prefix="/", blocking=False)
    log.info("serving %s on http://%s:%d (Ray Serve)", APP_NAME, host, port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("shutting down")
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
