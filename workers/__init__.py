"""Celery deployment: the app, its queues and routing, and thin tasks (one service call each)."""
