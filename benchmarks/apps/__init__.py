"""Apps of the benchmarks' own, written as their users write them (not the reference service)."""
