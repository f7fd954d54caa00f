"""Scores out: report.json/md/html of a run, rebuilt from the cache alone, and the comparison
of several runs. Reads what runs wrote; never imports the runner."""
