"""Reliable events: a transactional outbox relayed to Redis Streams or in-process consumers."""
