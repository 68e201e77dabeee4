"""Measuring what was trained: metrics, the evaluation report, the data preview."""
