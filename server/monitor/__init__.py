"""System monitor: CPU, memory, process RSS and NVIDIA GPU load (MonitorService)."""
