"""POST /api/v1/ingest: decode, then the shared ingest pipeline (srvmon_server.ingest).

The body is one envelope (answered ``{"stored", "duplicates"}``) or ``{"batches": [...]}``
(answered ``{"results": [...]}``, one entry per envelope in order: its counts, or the error
envelope of an envelope that did not decode or whose timestamp is outside the accepted
window; the others are still stored).
"""

from __future__ import annotations

from typing import Any

from srvmon_core.errors import DecodeError
from srvmon_core.view import BatchView
from srvmon_server.auth import Access
from srvmon_server.errors import error_dict, http_error
from srvmon_server.handlers.base import BaseHandler
from srvmon_server.ingest import TimestampRejected, decode_body, ingest_batch, ingest_batches


class IngestHandler(BaseHandler):
    needs = {"POST": Access.INGEST}  # collectors' and consumers' tokens: this and nothing else

    async def post(self) -> None:
        self._check_size()
        legacy = self.ctx.config.legacy  # the zone and loop of legacy Java documents
        decoded = await decode_body(
            self.body, legacy_tz=legacy.tz, legacy_interval_seconds=legacy.interval_seconds
        )
        if isinstance(decoded, BatchView):
            result = await ingest_batch(self.ctx, decoded)
            self.write_json({"stored": result.stored, "duplicates": result.duplicates})
            return
        good = [item for item in decoded if isinstance(item, BatchView)]
        stored = iter(await ingest_batches(self.ctx, good))
        answers: list[dict[str, Any]] = []
        for item in decoded:
            if isinstance(item, DecodeError):
                answers.append(error_dict(400, "invalid_body", item.message, item.path))
            else:
                outcome = next(stored)
                if isinstance(outcome, TimestampRejected):
                    mapped = http_error(outcome)
                    assert mapped is not None
                    answers.append(
                        error_dict(mapped.status, mapped.code, mapped.message, mapped.field)
                    )
                    continue
                answers.append({"stored": outcome.stored, "duplicates": outcome.duplicates})
        self.write_json({"results": answers})
