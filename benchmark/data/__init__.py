"""Data (layer 1, with metrics and models): the built-in datasets (`datasets`), the user's own images and the `[data]`
section (`user_data`), draws from the analytic mixture (`gmm`), and the declared value range of float arrays
(`value_range`).

May import: errors, seeding, metrics, models. Never sampling, estimators or anything above.
"""
