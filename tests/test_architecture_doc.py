"""docs/architecture.md stays true to the code: its launcher-abilities table against the real launcher classes.

The table once said kfp was not a ``PreparingLauncher`` when it was; the sweeper decides by ``isinstance`` on
these Protocols, so a row that drifts misleads whoever reads the page to write a launcher.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hydra_plugins.navitune_kfp.kfp_launcher import KFPLauncher
from hydra_plugins.navitune_process_pool.process_pool_launcher import ProcessPoolLauncher
from hydra_plugins.navitune_shared import protocol

ARCHITECTURE = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
LAUNCHERS = {"process_pool": lambda: ProcessPoolLauncher(n_jobs=2), "kfp": lambda: KFPLauncher(backend="local")}


def abilities_table() -> dict[str, dict[str, bool]]:
    """{Protocol: {launcher: has it}} from the table under '### Launcher abilities'."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("### Launcher abilities", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip().strip("`") for c in rows[0].strip("|").split("|")]
    table = {}
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = re.match(r"`(\w+)`", cells[0]).group(1)
        table[name] = {launcher: cells[header.index(launcher)] == "yes" for launcher in LAUNCHERS}
    return table


def test_the_table_names_every_launcher_protocol() -> None:
    declared = {n for n in ("AsyncLauncher", "PreparingLauncher", "CompilingLauncher") if hasattr(protocol, n)}
    assert set(abilities_table()) == declared


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_the_abilities_table_matches_the_launcher_classes(launcher: str) -> None:
    instance = LAUNCHERS[launcher]()
    for name, has in abilities_table().items():
        assert isinstance(instance, getattr(protocol, name)) is has[launcher], (
            f"docs/architecture.md says {launcher} is{'' if has[launcher] else ' not'} a {name}")
