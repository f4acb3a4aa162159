"""Shared test settings: the repo root on sys.path (tests import shared helpers as tests.*), and the fixtures that
start real local services (tests/fixtures/), which a test uses by naming them."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = ["tests.fixtures.mariadb", "tests.fixtures.mlflow", "tests.fixtures.bqemulator"]
