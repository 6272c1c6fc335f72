"""Execution (layer 6): the mechanics under a run, with no knowledge of protocols or reports: the sampling pass in
shards observed by the estimators (`generation`), features once per (space, split) (`features`), post-hoc scores
(`feature_scores`), the run folder and its fingerprint (`run_dir`, `inputs_digest`), checksummed chunk files
(`checksums`), atomic writes (`io`, `figures`), the lock, the work queue and torch.distributed (`lock`,
`work_queue`, `distributed`).

May import: everything from layer 0 to config. Never protocols, report, runner, publish or cli.
"""
