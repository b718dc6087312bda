"""flow.yml as the command line uses it: the settings with the command's options put in, the
flow built from them, and the flow exported for Kubernetes or docker-compose."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from audiosearch.client import API_KEY_ENV

__all__ = [
    "CONTAINER_WORKSPACE", "FLOW_YML", "INDEX_VOLUME", "ROOT", "base_url", "build_flow",
    "containerized", "finish_compose", "flow_config",
]  # fmt: skip

ROOT = Path(__file__).resolve().parent.parent
FLOW_YML = ROOT / "flow.yml"
#: Where the image keeps the index, and the named volume exported deployments keep it in.
CONTAINER_WORKSPACE = "/app/workspace"
INDEX_VOLUME = "audiosearch-index"


def flow_config(
    *, port: int | None = None, host: str | None = None, workspace: str | None = None,
    encoder: str | None = None, models_dir: str | None = None,
    allowed_roots: Sequence[str] = (), max_seconds: float | None = None,
    shards: int | None = None, dtype: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """flow.yml as a dict, with the given values put in place of its own.

    ``allowed_roots`` and the folders in AUDIOSEARCH_ALLOWED_ROOTS (os.pathsep-separated) are
    added to flow.yml's; AUDIOSEARCH_API_KEY, when set, becomes the gateway's API key.
    """
    config = yaml.safe_load(FLOW_YML.read_text())
    if port is not None:
        config["with"]["port"] = port
    if host is not None:
        config["with"]["host"] = host
    executors = {e["name"]: e for e in config["executors"]}
    if workspace is not None:
        executors["indexer"]["workspace"] = str(Path(workspace).absolute())
    if shards is not None:
        executors["indexer"]["shards"] = shards
    if dtype is not None:
        executors["indexer"]["uses_with"]["dtype"] = dtype
    if encoder is not None:
        executors["encoder"]["uses_with"]["encoder"] = encoder
    if models_dir is not None:
        executors["encoder"]["uses_with"]["models_dir"] = str(Path(models_dir).absolute())
    # One mapping: flow.yml gives it to every reader by a YAML alias (&read_policy).
    read_policy = config["gateway"]["uses_with"]["read_policy"]
    env_roots = os.environ.get("AUDIOSEARCH_ALLOWED_ROOTS", "").split(os.pathsep)
    read_policy["allowed_roots"] = read_policy["allowed_roots"] + [
        str(Path(root).expanduser().absolute()) for root in (*env_roots, *allowed_roots) if root
    ]
    if max_seconds is not None:
        read_policy["max_seconds"] = max_seconds
    if os.environ.get(API_KEY_ENV):
        config["gateway"]["uses_with"]["api_key"] = os.environ[API_KEY_ENV]
    return config


def build_flow(config: dict[str, Any]):
    """A Jina Flow from ``config``; relative paths in it are taken from the project root."""
    from jina import Flow

    os.chdir(ROOT)  # py_modules, models/ and workspace/ in flow.yml are relative to it
    return Flow.load_config(config)


def base_url(config: dict[str, Any]) -> str:
    """Where the flow described by ``config`` answers HTTP."""
    host = config["with"]["host"]
    return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{config['with']['port']}"


def containerized(config: dict[str, Any], image: str, tag: str) -> tuple[dict[str, Any], list[str]]:
    """``config`` with the gateway and every executor run from an image of its own, and the
    ``docker build`` commands that make those images from this project's Dockerfile."""
    builds: list[str] = []

    def image_of(name: str, uses: str, py_modules: list[str]) -> str:
        builds.append(
            f"docker build --build-arg EXECUTOR={uses} --build-arg PY_MODULE={py_modules[0]} "
            f"-t {image}-{name}:{tag} ."
        )
        return f"docker://{image}-{name}:{tag}"

    gateway = config["gateway"]
    gateway["uses"] = image_of("gateway", gateway["uses"], gateway["py_modules"])
    for executor in config["executors"]:
        if executor.get("shards", 1) > 1:  # Jina runs the shards' head from the plain image
            builds.insert(0, f"docker build -t {image}:{tag} .")
        if "uses_after" in executor:
            executor["uses_after"] = image_of(
                f"{executor['name']}-merger", executor["uses_after"], executor["py_modules"]
            )
        executor["uses"] = image_of(executor["name"], executor["uses"], executor["py_modules"])
        if "workspace" in executor:  # a volume that outlives the container, where the image has it
            executor["workspace"] = CONTAINER_WORKSPACE
            executor["volumes"] = [f"{INDEX_VOLUME}:{CONTAINER_WORKSPACE}"]
    config["with"]["disable_auto_volume"] = True  # else compose mounts a cache over /app, the code
    # Container paths, not the exporting host's: the image's library mount point added.
    read_policy = config["gateway"]["uses_with"]["read_policy"]
    read_policy["allowed_roots"] = [*yaml.safe_load(FLOW_YML.read_text())["gateway"]["uses_with"][
        "read_policy"]["allowed_roots"], "/data"]  # fmt: skip
    return config, builds


def finish_compose(path: Path) -> None:
    """Make the docker-compose file Jina wrote restart what dies and keep the index.

    Every service restarts when its process dies (a dead executor brings the service back by
    itself); the indexer's shards share one named volume, so the index outlives
    ``docker compose down`` and any shard can read another's clips for "more like this"; the
    gateway is published on 127.0.0.1 only, as the Dockerfile advises.
    """
    compose = yaml.safe_load(path.read_text())
    for service in compose["services"].values():
        service["restart"] = "unless-stopped"
        service["ports"] = [f"127.0.0.1:{p}" for p in service.get("ports", [])] or None
        if service["ports"] is None:
            del service["ports"]
    compose["volumes"] = {INDEX_VOLUME: {}}
    path.write_text(yaml.safe_dump(compose, sort_keys=False))
