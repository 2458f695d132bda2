"""Annotator and vendor performance: throughput, time, turnaround, quality and rework."""
