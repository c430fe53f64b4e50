"""A minimal Docker Engine API client (stdlib only) for the few calls the collector makes.

The docker SDK costs about 18 MB of resident memory (requests, urllib3, …); the collector
needs four GET requests, so it speaks HTTP/1.1 over the engine's socket itself.
Supports ``unix:///path/docker.sock`` and plain ``tcp://host:port`` / ``http://host:port``
(no TLS). Method names match ``docker.APIClient`` so either can be passed around.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from typing import Any
from urllib.parse import quote, urlsplit

from srvmon_core.errors import ConfigError


class EngineError(Exception):
    """The engine answered with an error status or could not be reached."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Stream:
    """Lines of a streaming answer; ``close()`` from another thread unblocks ``readline()``."""

    def __init__(self, connection: http.client.HTTPConnection, response: Any) -> None:
        self._connection = connection
        self._response = response

    def readline(self) -> bytes:
        line: bytes = self._response.readline()
        return line

    def close(self) -> None:
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._connection.close()


class EngineClient:
    """Keeps one connection open and reconnects when the engine closed it."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self._timeout = timeout
        if parts.scheme == "unix":
            self._unix_path: str | None = parts.path
            self._netloc = ""
        elif parts.scheme in ("tcp", "http"):
            self._unix_path = None
            self._netloc = parts.netloc
        else:
            raise ConfigError(
                f"unsupported Docker URL {base_url!r}: use unix:///… or tcp://host:port",
                "docker_url",
            )
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._unix_path is not None:
            return _UnixConnection(self._unix_path, self._timeout)
        return http.client.HTTPConnection(self._netloc, timeout=self._timeout)

    def _get(self, path: str) -> Any:
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = self._connect()
            try:
                self._connection.request("GET", path)
                response = self._connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 2:
                    raise EngineError(f"Docker engine unreachable: {exc}") from exc
                continue
            if response.status >= 400:
                raise EngineError(f"GET {path}: {response.status} {body[:200]!r}")
            return json.loads(body) if body and body[:1] in b"[{" else body.decode()
        raise EngineError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def open_stream(self, path: str) -> Stream:
        """A long-lived GET on its own connection (no timeout), e.g. ``/events``."""
        connection = self._connect()
        connection.timeout = None
        connection.request("GET", path)
        response = connection.getresponse()
        if response.status >= 400:
            connection.close()
            raise EngineError(f"GET {path}: {response.status}")
        return Stream(connection, response)

    def ping(self) -> bool:
        return bool(self._get("/_ping") == "OK")

    def containers(self, all: bool = False) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get(f"/containers/json?all={1 if all else 0}")
        return result

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/containers/{quote(container_id)}/json")
        return result

    def stats(self, container_id: str, stream: bool = False, one_shot: bool = True) -> Any:
        flags = f"stream={str(stream).lower()}&one-shot={str(one_shot).lower()}"
        return self._get(f"/containers/{quote(container_id)}/stats?{flags}")
