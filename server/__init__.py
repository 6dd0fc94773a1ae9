"""PeroMesh servers: dialog core, TTS, memory, reminders, tasks, monitor, hub."""
