"""Why a judge is right or wrong, beyond its accuracy: length, position, generators,
calibration, samples and agreement between runs. Pure functions over a run's voted comparisons
and the facts of its items (lengths, models, categories); no requests, no files."""
