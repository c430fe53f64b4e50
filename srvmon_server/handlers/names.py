"""GET /api/v1/resolve: which machines a name, key or glob picks (the name resolver)."""

from __future__ import annotations

from srvmon_server.handlers.base import ApiError, BaseHandler
from srvmon_server.payloads import resolution_json

MAX_PATTERN_LENGTH = 200
RESOLVE_LIMIT = 1000
"""Most machines listed in one answer (``count`` says how many matched)."""


class ResolveHandler(BaseHandler):
    def get(self) -> None:
        pattern = self.get_query_argument("machine", "*", strip=False) or "*"  # bounded as sent
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise ApiError(
                400,
                "invalid_parameter",
                f"machine is longer than {MAX_PATTERN_LENGTH}",
                "machine",
            )
        self.write_json(resolution_json(self.ctx.names.resolve(pattern), RESOLVE_LIMIT))
