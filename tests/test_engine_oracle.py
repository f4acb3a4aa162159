"""The vectorised ``Engine.run`` against the plain per-driver reference loop in ``experiment/sim/reference.py``.

Each case builds two engines from the same parameters (``Engine.run`` consumes the engine's RNG), runs
the vectorised loop on one and the scalar oracle on the other, and requires identical results: every
per-shift accumulator, every passenger's final state, the trip log and the decision count.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from experiment.sim.engine import ABANDONED, SERVED, SimOutput, SimulationStopped
from experiment.sim.navigation import NavigationParams
from experiment.sim.simulate import SimParams, simulate

from experiment.sim.reference import build_engine, run_reference

NAV = NavigationParams.from_road_weights(0.93, 3.0, {"right": 2.0, "uturn": 4.0})

FLOAT_FIELDS = (
    "revenue", "km_vacant", "km_occupied", "km_return",
    "min_vacant", "min_occupied", "min_break", "min_return", "t_end",
)
LOG_INT = ("shift", "passenger")
LOG_FLOAT = ("pickup_t", "dropoff_t", "distance_km", "fare_yen")


def assert_same_output(got: SimOutput, ref: SimOutput) -> None:
    """Vectorised ``got`` equals reference ``ref`` (floats to 1e-9 absolute, integers exactly)."""
    assert got.shifts is ref.shifts or got.shifts.n_shifts == ref.shifts.n_shifts
    for name in FLOAT_FIELDS:
        a, b = getattr(got, name), getattr(ref, name)
        assert a.shape == b.shape, name
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{name}: NaN pattern")
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True, err_msg=name)
    np.testing.assert_array_equal(got.trips, ref.trips, err_msg="trips")
    np.testing.assert_array_equal(got.passenger_status, ref.passenger_status, err_msg="passenger_status")
    assert set(got.trip_log) == set(ref.trip_log)
    for name in LOG_INT:
        np.testing.assert_array_equal(got.trip_log[name], ref.trip_log[name], err_msg=f"trip_log[{name}]")
    for name in LOG_FLOAT:
        a, b = got.trip_log[name], ref.trip_log[name]
        assert a.shape == b.shape, f"trip_log[{name}]"
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, err_msg=f"trip_log[{name}]")
    assert got.decisions == ref.decisions


def outputs_match(got: SimOutput, ref: SimOutput) -> bool:
    try:
        assert_same_output(got, ref)
    except AssertionError:
        return False
    return True


def run_both(p: SimParams, **ref_kw) -> tuple[SimOutput, SimOutput]:
    """(vectorised, reference) outputs, each on its own freshly built engine."""
    fast, slow = build_engine(p), build_engine(p)
    return fast.run(), run_reference(slow, **ref_kw)


CASES = {
    # region, drivers, requests/h, weekday, days, seed, policy, max_shift_h
    "ring_cruise": SimParams("ring_city", 40, 300.0, 2, 1, 3, policy=None, max_shift_h=8),
    "ring_nav_busy": SimParams("ring_city", 40, 1500.0, 4, 1, 2, policy=NAV, max_shift_h=8),
    "tokyo_cruise": SimParams("tokyo_central", 60, 300.0, 0, 1, 11, policy=None, max_shift_h=10),
    "tokyo_nav": SimParams("tokyo_central", 30, 120.0, 5, 1, 2, policy=NAV, max_shift_h=7),
    # full-length shifts: alternate-day drivers take all three breaks
    "ring_nav_long_shifts": SimParams("ring_city", 20, 600.0, 1, 1, 8, policy=NAV, max_shift_h=None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_vectorised_run_matches_reference(name: str) -> None:
    got, ref = run_both(CASES[name])
    assert_same_output(got, ref)
    # the cases exercise every branch the comparison is meant to cover
    assert ref.trips.sum() > 0
    assert (ref.passenger_status == SERVED).sum() == ref.trips.sum()
    assert (ref.passenger_status == ABANDONED).any()
    assert (ref.min_break > 0).any()
    assert (ref.km_return > 0).any()
    assert not np.isnan(ref.t_end).any()


def test_cases_cover_competition_and_all_breaks() -> None:
    """Several drivers with someone waiting at their corner in one pass, and shifts with all three
    breaks, do occur in the compared cases."""
    trace: list = []
    ref = run_reference(build_engine(CASES["ring_nav_busy"]), trace=trace)
    assert_same_output(build_engine(CASES["ring_nav_busy"]).run(), ref)
    picked = [pid for *_, pid in trace if pid >= 0]
    assert sorted(picked) == sorted(ref.trip_log["passenger"].tolist())
    per_pass_corner = Counter((k, n, v) for k, n, _, v, _, pid in trace if pid >= 0)
    assert max(per_pass_corner.values()) >= 2  # two drivers picked up at the same corner in one pass

    got, ref = run_both(CASES["ring_nav_long_shifts"])
    assert_same_output(got, ref)
    assert (ref.min_break >= 3 * ref.shifts.break_min).any()


def test_reference_invariants() -> None:
    """Sanity of the oracle itself (and so of the engine it matches): time is conserved per shift and
    every passenger is picked up at most once, only while waiting."""
    p = CASES["ring_nav_busy"]
    engine = build_engine(p)
    ref = run_reference(engine)
    sh = ref.shifts
    spent = ref.min_vacant + ref.min_occupied + ref.min_break + ref.min_return
    np.testing.assert_allclose(spent, ref.t_end - sh.start, rtol=0, atol=1e-6)
    pid = ref.trip_log["passenger"]
    assert np.unique(pid).size == pid.size
    t0 = ref.trip_log["pickup_t"]
    assert np.all(engine.pax.arrival[pid] <= t0)
    assert np.all(t0 <= engine.pax.expiry[pid])
    assert np.all(t0 >= sh.start[ref.trip_log["shift"]])


def test_on_day_and_stop_match() -> None:
    """The midnight progress hook sees the same values and stops at the same day."""
    p = SimParams("ring_city", 20, 300.0, 3, 2, 4, policy=None, max_shift_h=8)
    seen_fast: list[tuple[int, float]] = []
    seen_ref: list[tuple[int, float]] = []

    def stop_after_first(log):
        return lambda day, revenue: log.append((day, revenue)) or day >= 0

    with pytest.raises(SimulationStopped) as fast_exc:
        build_engine(p).run(stop_after_first(seen_fast), p.n_days)
    with pytest.raises(SimulationStopped) as ref_exc:
        run_reference(build_engine(p), stop_after_first(seen_ref), p.n_days)
    assert fast_exc.value.day == ref_exc.value.day == 0
    assert [d for d, _ in seen_fast] == [d for d, _ in seen_ref] == [0]
    assert [r for _, r in seen_fast] == pytest.approx([r for _, r in seen_ref], abs=1e-6)
    assert seen_fast[0][1] > 0

    seen_fast.clear()
    seen_ref.clear()
    got = build_engine(p).run(lambda d, r: seen_fast.append((d, r)) and False, p.n_days)
    ref = run_reference(build_engine(p), lambda d, r: seen_ref.append((d, r)) and False, p.n_days)
    assert_same_output(got, ref)
    assert [d for d, _ in seen_fast] == [d for d, _ in seen_ref] == [0]  # every midnight but the last
    assert [r for _, r in seen_fast] == pytest.approx([r for _, r in seen_ref], abs=1e-6)


def test_build_engine_matches_simulate() -> None:
    """``build_engine`` builds the very engine ``simulate`` runs."""
    p = CASES["tokyo_nav"]
    via_simulate = simulate(p).output
    assert_same_output(build_engine(p).run(), via_simulate)


def test_perturbed_reference_does_not_match() -> None:
    """The comparison can fail: doing a pass's break / trip-home checks before its pick-ups is caught."""
    p = CASES["ring_cruise"]
    got, wrong = run_both(p, swap_pickup_and_checks=True)
    assert not outputs_match(got, wrong)
    with pytest.raises(AssertionError):
        assert_same_output(got, wrong)
