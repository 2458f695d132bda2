"""Exact, perceptual and semantic duplicate detection: FAISS indexes and duplicate groups."""
