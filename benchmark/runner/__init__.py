"""The runner (layer 9): one generation pass observed by every estimator, then the protocols, then the report.

`setup` builds the model and the estimators and supplies what each estimator declares it needs (`resources`);
`phases` and `run` drive the work queue.

May import: every layer below it. Never publish or cli.
"""
