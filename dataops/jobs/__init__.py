"""Jobs facade: long work runs on Celery workers when a broker is set, in-process otherwise."""

from dataops.jobs.runner import JobContext, execute, submit

__all__ = ["JobContext", "execute", "submit"]
