"""POST /api/v1/ingest: decode, then the shared ingest pipeline (srvmon_server.ingest)."""

from __future__ import annotations

from srvmon_server.handlers.base import BaseHandler
from srvmon_server.ingest import decode_body, ingest_batch


class IngestHandler(BaseHandler):
    async def post(self) -> None:
        self._check_size()
        batch = decode_body(self.body)
        result = await ingest_batch(self.ctx, batch)
        self.write_json({"stored": result.stored, "duplicates": result.duplicates})
