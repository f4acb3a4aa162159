"""``navitune submit`` and ``navitune schedule``: sweeps that run on the cluster, unattended (docs/runbook.md).

Modules: :mod:`.command` (what the driver pod runs), :mod:`.plan` (the local checks and what they settle),
:mod:`.submit` and :mod:`.schedule` (the two commands). The driver pipeline itself is taxi-free and lives with
the launcher (``hydra_plugins.navitune_kfp.driver``).
"""
