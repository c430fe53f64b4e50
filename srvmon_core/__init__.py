"""srvmon_core: metric schemas, codecs and the alert engine. Pure: no I/O, no clock.

Imports only the standard library, attrs and cattrs.
"""

from srvmon_core.codec import (
    batch_from_dict,
    decode_batch,
    decode_legacy,
    decode_message,
    encode_batch,
    unstructure,
)
from srvmon_core.errors import ConfigError, DecodeError, SrvmonError
from srvmon_core.metrics import METRICS, Metric, container_metrics, host_metrics
from srvmon_core.schema import (
    SCHEMA_VERSION,
    AgentStats,
    Batch,
    ContainerSample,
    DiskIO,
    DiskUsage,
    HostSample,
    NetIO,
    Temperature,
    container_key,
    host_key,
)

__all__ = [
    "METRICS",
    "SCHEMA_VERSION",
    "AgentStats",
    "Batch",
    "ConfigError",
    "ContainerSample",
    "DecodeError",
    "DiskIO",
    "DiskUsage",
    "HostSample",
    "Metric",
    "NetIO",
    "SrvmonError",
    "Temperature",
    "batch_from_dict",
    "container_key",
    "container_metrics",
    "decode_batch",
    "decode_legacy",
    "decode_message",
    "encode_batch",
    "host_key",
    "host_metrics",
    "unstructure",
]
