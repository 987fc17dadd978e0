"""Grouping verified links into stories: average linkage, time windows, batch clustering, the Ray engine."""
