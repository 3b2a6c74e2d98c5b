"""Comparison of EM and the PyMC posterior, with ArviZ diagnostics (the report)."""
