"""Append-only log of every state change: who did what, when, and why."""
