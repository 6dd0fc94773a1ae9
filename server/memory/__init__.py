"""Long-term memory: MemoryService (storage, vectors, lexical index, spreading activation, secretary)."""
