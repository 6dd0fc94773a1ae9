"""The capability grid as the dialog's tools: tool lists, deterministic commands, NIT, broadcasts."""
