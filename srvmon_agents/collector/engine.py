"""Connect to the Docker Engine API through the docker SDK, as the docker CLI would.

:func:`connect` returns a ``docker.APIClient`` (the SDK's low-level client): the collector
lists, inspects and follows events through it; resource figures come from cgroup files.

- The address is ``base_url`` (``--docker-url``), else ``DOCKER_HOST``, else the local socket.
- TLS follows the CLI's variables: ``DOCKER_TLS_VERIFY`` (set and not empty: verify the
  daemon against ``ca.pem``) and ``DOCKER_CERT_PATH`` (``ca.pem``, ``cert.pem``, ``key.pem``;
  default ``~/.docker``). Either variable turns TLS on, as ``docker.utils.kwargs_from_env``
  reads them.
- requests' own environment settings are not applied to this connection
  (``Session.trust_env = False``): ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` would otherwise
  replace the ``ca.pem`` of ``DOCKER_CERT_PATH`` when verifying the daemon, and proxy variables
  would be applied to it.
- The API version is negotiated like the CLI does: the daemon's ``ApiVersion`` from the
  unversioned ``GET /version``, capped at the newest version this SDK knows. A daemon older
  than the SDK's minimum is refused with a clear error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker import APIClient


class EngineError(Exception):
    """The engine could not be reached, or its answers cannot be used."""


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def negotiate(server_version: str, server_minimum: str | None, newest: str, oldest: str) -> str:
    """The API version both sides speak: the daemon's, capped at ``newest`` (the SDK's)."""
    try:
        chosen = min(server_version, newest, key=_version_key)
        if _version_key(chosen) < _version_key(oldest):
            raise EngineError(
                f"the Docker daemon speaks API {server_version}; at least {oldest} is needed"
            )
        if server_minimum and _version_key(chosen) < _version_key(server_minimum):
            raise EngineError(
                f"the Docker daemon needs API {server_minimum} or later; this SDK speaks {newest}"
            )
    except ValueError as exc:
        raise EngineError(f"unreadable API version from the daemon: {server_version!r}") from exc
    return chosen


def connect(
    base_url: str | None = None,
    *,
    timeout: float = 10.0,
    environ: Mapping[str, str] | None = None,
) -> APIClient:
    """A ``docker.APIClient`` bound to the engine, with TLS and a negotiated API version.

    Raises :class:`EngineError` when the engine cannot be reached or configured.
    """
    import docker
    from docker.constants import DEFAULT_DOCKER_API_VERSION, MINIMUM_DOCKER_API_VERSION
    from docker.utils import kwargs_from_env

    env = dict(os.environ if environ is None else environ)
    if base_url:
        env["DOCKER_HOST"] = base_url
    try:
        options: dict[str, Any] = kwargs_from_env(environment=env)
        client = _client(DEFAULT_DOCKER_API_VERSION, timeout, options)
    except docker.errors.DockerException as exc:
        raise EngineError(f"bad Docker address or TLS settings: {exc}") from exc
    try:
        info = client.version(api_version=False)
        version = negotiate(
            str(info.get("ApiVersion", "")),
            info.get("MinAPIVersion"),
            DEFAULT_DOCKER_API_VERSION,
            MINIMUM_DOCKER_API_VERSION,
        )
    except EngineError:
        client.close()
        raise
    except (docker.errors.DockerException, OSError) as exc:  # requests' errors are OSErrors
        client.close()
        raise EngineError(f"Docker engine unreachable: {exc}") from exc
    if version == client.api_version:
        return client
    client.close()
    return _client(version, timeout, options)


def _client(version: str, timeout: float, options: dict[str, Any]) -> APIClient:
    import docker

    client = docker.APIClient(version=version, timeout=timeout, **options)
    client.trust_env = False
    return client


EngineClient = connect
"""The name ``srvmon standalone`` imports: ``EngineClient(url, timeout=…)`` gives the client."""
