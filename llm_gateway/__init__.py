"""The `llm-gateway` console script: the one place that imports `app`, `export` and `benchmarks` together."""
