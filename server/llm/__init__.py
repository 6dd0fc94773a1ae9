"""Chat model providers behind one streaming interface (local, OpenAI-compatible, scripted)."""
