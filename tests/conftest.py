"""Shared test settings: the repo root on sys.path (tests import shared helpers as tests.*), the fixtures that
start real local services (tests/fixtures/), which a test uses by naming them, and the rule that a test which
starts one of those services is ``slow``."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.mariadb", "tests.fixtures.mlflow", "tests.fixtures.bqemulator"]

# the fixtures of tests/fixtures that start a real service (a server process, a browser)
SERVICE_FIXTURES = frozenset({"mariadb", "mlflow_server", "bqemulator", "chromium"})


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a service fixture, directly or through another fixture, is ``slow``: ``make test-fast``
    (``-m "not slow"``) then needs no service at all. Tests that run sweeps or CLI simulations are marked in
    their modules."""
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a terminal delivers it, however the suite was started: a shell without job control starts a
    background command with SIGINT ignored, and every process it starts (the sweeps the interrupt tests stop
    with SIGINT) would inherit that."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
