"""The Python API (layer 11, the top, beside the CLI): a run, a finished run folder and a leaderboard as Python
objects and pandas tables, for notebooks (docs/python_api.md). The package's own names (`benchmark.run`,
`benchmark.load`, `benchmark.compare`, `benchmark.Run`, `benchmark.Replicates`) come from here, imported on first use.

- `running`: `run(config, out)` through the CLI's own path (`execute`, which `python -m benchmark run` calls);
- `results`: `load(run_dir)` -> `Run` (or `Replicates` for a `run.seeds` folder), validated as `validate` does;
- `frames`: a run's tables as typed DataFrames (metrics, verdicts of the family, headline);
- `samples`: the per-sample scores, pixel maps and images kept in a run's generation shards;
- `comparison`: `compare(runs)`, the leaderboard's boards as one DataFrame.

May import: every layer (errors ... publish). Never cli (the CLI imports `running`).
"""
