"""navitune's Hydra launchers (discovered by Hydra through the ``hydra_plugins`` namespace package)."""
