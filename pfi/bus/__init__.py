"""Kafka plumbing: topics, Avro envelopes, producer/consumer, stage runner, outbox, broker."""
