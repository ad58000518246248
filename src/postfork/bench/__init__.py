"""Benchmark harness: delay proxy (network distance on loopback) and, later, the bench runner."""
