"""The catalog at a glance: counts, jobs at work and the latest events (staff only)."""
