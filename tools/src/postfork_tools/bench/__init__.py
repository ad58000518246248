"""Benchmark harness: the delay proxy (network distance on loopback) and the server runner."""
