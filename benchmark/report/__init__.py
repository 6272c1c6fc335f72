"""Report (layer 8): what a run writes besides its metrics: the document (`document`), its tables (`tables`,
`metric_info`), verdicts with their error rates (`verdicts`, `findings`), ranks (`ranking`), figures (`plots`),
the manifest (`manifest`) and metrics.csv (`metrics_file`).

May import: every layer up to protocols. Never runner, publish or cli.
"""
