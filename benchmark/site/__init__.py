"""Static leaderboard site (see benchmark.site.build)."""
