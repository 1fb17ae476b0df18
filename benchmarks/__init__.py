"""`llm-gateway bench`: this stack against the PyTorch baseline, on one machine, in one sitting.

Layout, in the order a run goes through it:
- `cli`: flags, exit codes, SIGTERM handling; `plan`: how much to measure and the prompt set;
  `contestants`: who competes, from the model folders' manifests.
- `runner`: load, warm up, then rounds (alternating order; disturbed rounds repeated, `machine`).
- `worker`: one contestant in a process of its own (its msgspec protocol, both sides); inside it run
  `ours` (the engine in-process) or `huggingface` (PyTorch and ORTModel generate).
- `load`: the HTTP contestant: named load scenarios, streaming clients, the /v1/health prober, over
  `server` (`llm-gateway serve` as a child process, shared with the tests).
- `stats`: raw timings to per-repetition figures, medians and paired ratios; `results`: results.json as
  msgspec Structs and the targets; `report`: report.md, the charts and the files of a run.

Stand-alone measurements, not part of a bench run (`python -m benchmarks.NAME`; each docstring says how):
`prefill_paths` (one graph under other MatMulNBits accuracy levels), `linear_kernels` (one linear through
each CPU kernel ORT has for it), `grammar_speed` (constrained decoding's per-token cost).
"""
