"""`llm-gateway bench`: this stack against the PyTorch baseline, on one machine, in one sitting.

Layout: `cli` (arguments, exit codes) -> `runner` (phases and repetitions) -> `workers` (one subprocess per
contestant, so each has its own peak RSS) and `http_load` (the served model under streaming clients) ->
`figures` (raw timings to medians and paired ratios) -> `report`, `charts`, `results.json`.
"""
