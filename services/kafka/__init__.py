"""Broker-neutral Kafka plumbing: settings, client configuration, topic administration."""
