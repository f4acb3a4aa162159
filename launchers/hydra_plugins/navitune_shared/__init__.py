"""Code shared by navitune's Hydra plugins and by ``experiment`` (no plugin class lives here).

Hydra imports every module under ``hydra_plugins`` at each start, so modules here import the standard library
only. ``redact``: the one masking of secrets in text that is logged or recorded.
"""
