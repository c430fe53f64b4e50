"""Where batches go: Kafka, stdout, or the server's HTTP ingest endpoint.

Every sink has the same small interface (:class:`srvmon_agents.sinks.base.Sink`).
"""
