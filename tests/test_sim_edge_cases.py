"""Inputs at the edge of what the config accepts still simulate: no request at all, a single driver."""

from __future__ import annotations

from experiment.sim.simulate import SimParams, simulate
from experiment.tunability import PRODUCTION


def test_a_window_that_draws_no_request_simulates_an_empty_day() -> None:
    """A tiny demand (issue 10: ``region.requests_per_hour=1 window.drivers=1`` crashed in the passenger draw)."""
    result = simulate(SimParams("ring_city", 1, 1e-6, 0, 1, 3, policy=PRODUCTION))
    assert result.output.passenger_status.size == 0  # no request was drawn
    assert result.metrics["trips_per_driver_shift"] == 0.0
    assert result.metrics["revenue_per_driver_day_yen"] == 0.0
