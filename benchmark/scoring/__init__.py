"""Judged comparisons to numbers: votes over samples, each item's score under the RMB rules,
accuracies per scenario and subset with bootstrap intervals, paired differences."""
