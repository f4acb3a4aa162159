"""Notifications about sweeps (``+notify=slack``): Hydra callbacks, configured under ``hydra.callbacks``."""
