"""Measuring quality and speed: metrics, the dev-set harness, the benchmarks (imported by the CLI only)."""
