"""The server fixtures of tests/server, for the composition layer's tests."""

from tests.server.conftest import clock, server, start_server

__all__ = ["clock", "server", "start_server"]
