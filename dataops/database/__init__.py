"""Database plumbing shared by every domain: dialect differences live here and nowhere else."""
