"""The runner: one generation pass observed by every estimator, then the protocols, then the report."""
