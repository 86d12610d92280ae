"""StreamRec's models: importable without Kafka or Triton."""
