"""Latency measurement: statistics, host environment, and local runtimes (imported lazily)."""
