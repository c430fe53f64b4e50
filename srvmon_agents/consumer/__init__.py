"""The consumer agent: relays batches from Kafka to the server's ingest endpoint.

At-least-once delivery: offsets are committed only after the server acknowledged every
message up to them; the server's idempotent ingest turns replays into exactly one row per
sample. Undecodable or rejected messages go to a dead-letter topic. See docs/consumer.md.
"""
