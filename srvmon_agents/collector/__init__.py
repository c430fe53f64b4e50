"""The collector agent: host and per-container metrics, read cheaply, sent to a sink."""
