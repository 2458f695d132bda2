"""Audits: inter-annotator agreement, gold checks, reports and acceptance gates."""
