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
from srvmon_core.defaults import DEFAULT_RULES
from srvmon_core.engine import (
    ActiveAlert,
    AlertEvent,
    EngineState,
    MachineRef,
    MachineSnapshot,
    StateChanges,
    active_alerts,
    check_silence,
    evaluate_batch,
    evaluate_view,
)
from srvmon_core.errors import ConfigError, DecodeError, SrvmonError
from srvmon_core.metrics import METRICS, Metric, container_metrics, host_metrics
from srvmon_core.rules import (
    Rule,
    Selector,
    effective_rules,
    load_rules,
    rule_from_dict,
    rule_to_dict,
)
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
from srvmon_core.series import evaluate_series
from srvmon_core.silences import Silence, SilenceMatchers, SilenceRequest
from srvmon_core.transitions import TRANSITIONS
from srvmon_core.view import BatchView, MachineView, batch_view

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

# the machine view
__all__ += ["BatchView", "MachineView", "batch_view"]

# the alert engine
__all__ += [
    "DEFAULT_RULES",
    "TRANSITIONS",
    "ActiveAlert",
    "AlertEvent",
    "EngineState",
    "MachineRef",
    "MachineSnapshot",
    "Rule",
    "Selector",
    "Silence",
    "SilenceMatchers",
    "SilenceRequest",
    "StateChanges",
    "active_alerts",
    "check_silence",
    "effective_rules",
    "evaluate_batch",
    "evaluate_series",
    "evaluate_view",
    "load_rules",
    "rule_from_dict",
    "rule_to_dict",
]
