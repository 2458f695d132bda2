"""Manifests: leakage-safe splits, canonical hashed bodies, exports and a torch Dataset.

Importing this package stays light: torch and pyarrow are imported only by the functions
that need them.
"""
