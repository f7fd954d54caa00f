"""Comparisons to judged comparisons: render each to its request and cache key, answer from the
cache or the judge, read the verdicts. The only place that wires the rooms together."""
