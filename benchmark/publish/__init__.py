"""Publishing (layer 10): what reads finished runs: `validate`, `regression` (`regress` against a baseline),
`leaderboard` (boards ranked within a track) and the static `site` (with `html`).

May import: every layer below it (it reads runs with the report's readers). Never cli.
"""
