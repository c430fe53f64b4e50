"""POST /api/v1/ingest: decode, then the shared ingest pipeline (srvmon_server.ingest).

The body is one envelope (answered ``{"stored", "duplicates"}``) or ``{"batches": [...]}``
(answered ``{"results": [...]}``, one entry per envelope in order: its counts, or the error
envelope of an envelope that did not decode or whose timestamp is outside the accepted
window; the others are still stored).

A server in replica mode refuses HTTP ingest (403 ``replica_mode``): it takes its batches
from its Kafka partitions, which decide which replica evaluates a host. The consumer
retries a 403 with a warning rather than dead-lettering (a configuration problem).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from srvmon_core.errors import DecodeError
from srvmon_core.view import BatchView
from srvmon_server.auth import Access
from srvmon_server.errors import ApiError, error_dict, http_error
from srvmon_server.handlers.base import BaseHandler
from srvmon_server.ingest import TimestampRejected, decode_body, ingest_batch, ingest_batches

if TYPE_CHECKING:
    from srvmon_server.context import ServerContext


def refuse_in_replica_mode(ctx: ServerContext) -> None:
    """403 ``replica_mode`` for HTTP ingest (``/api/v1/ingest``, legacy ``/api/metrics``)
    on a replica: its Kafka partitions decide which replica stores and evaluates a host."""
    replica = ctx.replica
    if replica is not None:
        raise ApiError(
            403,
            "replica_mode",
            f"this server is a replica: it takes batches from Kafka topic {replica.topic!r}"
            ", not over HTTP",
        )


class IngestHandler(BaseHandler):
    needs = {"POST": Access.INGEST}  # collectors' and consumers' tokens: this and nothing else

    async def post(self) -> None:
        refuse_in_replica_mode(self.ctx)
        self._check_size()
        with self.ctx.backlog.held():  # from here the server owes these batches
            await self._ingest()

    async def _ingest(self) -> None:
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
