"""The compiled (Numba) simulator against the NumPy one it replaced, which is kept as the reference.

``build_engine(p, numpy=True)`` plans with ``Planner.plan_numpy`` and drives with ``NumpyEngine``; the
default build plans and drives with the compiled kernels. For a fixed seed both must give identical
results: the same rounded choice counts in every slot, and every accumulator, passenger state and trip
log entry equal (floats to 1e-9 absolute, as the oracle tests ask).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest

from experiment.sim import engine as engine_mod
from experiment.sim.engine import Engine, SimOutput
from experiment.sim.engine_numpy import NumpyEngine
from experiment.sim.navigation import NavigationParams, value_iteration, value_iteration_numpy
from experiment.sim.shifts import MAX_BREAKS, ShiftPlan
from experiment.sim.simulate import SimParams, build_engine
from experiment.sim.traffic import congestion

from experiment.sim.reference import run_reference
from tests.test_engine_oracle import assert_same_output
from tests.test_sim_units import tiny_mdp

NAV = NavigationParams.from_road_weights(0.93, 3.0, {"right": 2.0, "uturn": 4.0})
RING_NAV = SimParams("ring_city", 40, 1500.0, 4, 2, 1, policy=NAV, max_shift_h=8)


def test_compiled_simulator_equals_numpy_simulator() -> None:
    """Same seed, same results: planning (choice counts of every slot) and driving (every output)."""
    fast, ref = build_engine(RING_NAV), build_engine(RING_NAV, numpy=True)
    assert type(fast) is Engine and type(ref) is NumpyEngine
    np.testing.assert_array_equal(fast.policy.counts, ref.policy.counts)
    got, want = fast.run(), ref.run()
    assert_same_output(got, want)
    assert want.trips.sum() > 100 and want.decisions > 3_000  # a run with something to compare


def test_compiled_planner_equals_numpy_planner_on_tokyo() -> None:
    """The full-size planner (9.7k edges, 48 slots a day) rounds to the very same counts."""
    p = SimParams("tokyo_central", 200, 240.0, 5, 1, 7, policy=NAV)
    fast, ref = build_engine(p), build_engine(p, numpy=True)
    np.testing.assert_array_equal(fast.policy.counts, ref.policy.counts)
    assert len(np.unique(fast.policy.counts)) > 10  # not a degenerate (e.g. all-zero) table


@pytest.mark.parametrize("seed", range(4))
def test_compiled_bellman_equals_numpy_bellman(seed: int) -> None:
    """Compiled and NumPy value iteration agree after the same number of backups (to rounding)."""
    mdp, p, fare = tiny_mdp(seed, n_states=30, n_actions=4, n_zones=3)
    v0 = np.linspace(0.0, 100.0, 30)
    v, q, it = value_iteration(mdp, p, fare, 0.95, v0=v0, max_iter=7, tol=0.0)
    v_np, q_np, it_np = value_iteration_numpy(mdp, p, fare, 0.95, v0=v0, max_iter=7, tol=0.0)
    assert it == it_np == 7
    np.testing.assert_allclose(v, v_np, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(q, q_np, rtol=1e-12, atol=1e-9)
    assert not np.allclose(v, v0)  # the backups did something


def test_the_three_implementations_of_the_keyed_draw_agree() -> None:
    """The compiled draw, its NumPy vectorisation and the oracle's Python-integer SplitMix64 give the same
    entry for every (key, driver, decision number); the entries are uniform over the table's K values."""
    from experiment.sim.kernels import CHOICE_K, choice_draw, choice_draws
    from experiment.sim.reference import splitmix_draw

    key = engine_mod.run_key(7)
    drivers = np.repeat(np.arange(50), 40)
    n = np.tile(np.arange(40), 50)
    vec = choice_draws(key, drivers, n)
    assert [int(choice_draw(np.uint64(key), int(d), int(i))) for d, i in zip(drivers[:200], n[:200])] == list(vec[:200])
    assert [splitmix_draw(key, int(d), int(i)) for d, i in zip(drivers, n)] == list(vec)
    assert vec.min() >= 0 and vec.max() < CHOICE_K
    hist = np.bincount(vec * 8 // CHOICE_K, minlength=8)
    assert hist.min() > 0.8 * vec.size / 8  # about uniform over eighths
    assert not np.array_equal(vec, choice_draws(engine_mod.run_key(8), drivers, n))  # the key matters


def _first_moves(engine: NumpyEngine, until: float) -> dict[int, list[int]]:
    """Each driver's pairs taken before minute ``until`` (NumPy engine with its move log)."""
    engine.move_log = []
    engine.run()
    moves: dict[int, list[int]] = {}
    for drivers, pairs, times in engine.move_log:
        for d, p, t in zip(drivers.tolist(), pairs.tolist(), times.tolist()):
            if t < until:
                moves.setdefault(d, []).append(p)
    return moves


def test_one_drivers_change_leaves_the_other_drivers_draws_alone() -> None:
    """Counter-based streams (issue 19): with one driver's shifts removed, the other drivers still draw the
    same entries, so those who have not met a customer the removed driver would have taken drive exactly
    as before. With one stream consumed in driver order, nearly every path changed from the first pass on."""
    p = SimParams("ring_city", 40, 300.0, 2, 1, 3, policy=NAV, max_shift_h=8)
    full = build_engine(p, numpy=True)
    less = build_engine(p, numpy=True)
    gone = int(less.shifts.driver[0])  # the first driver on the road
    keep = less.shifts.driver != gone
    less.shifts = ShiftPlan(
        driver=less.shifts.driver[keep], day=less.shifts.day[keep], kind=less.shifts.kind[keep],
        start=less.shifts.start[keep], end=less.shifts.end[keep], breaks=less.shifts.breaks[keep],
        break_min=less.shifts.break_min, driver_kind=less.shifts.driver_kind,
    )
    until = float(full.shifts.start.min()) + 60.0
    a, b = _first_moves(full, until), _first_moves(less, until)
    others = [d for d in a if d != gone and d in b]
    assert len(others) >= 10
    same = sum(a[d] == b[d] for d in others)
    assert same >= 0.8 * len(others), (same, len(others))


def _crowd(engine: Engine, cls: type[Engine], n_drivers: int, minutes: float) -> Engine:
    """A ``cls`` copy of ``engine`` with ``n_drivers`` drivers all starting a ``minutes``-long shift at
    minute 0.5 from depot 0, so every one of them moves in the first pass of the first minute."""
    crowd = copy.copy(engine)
    crowd.__class__ = cls
    crowd.draw_key = engine_mod.run_key(1)
    start = np.full(n_drivers, 0.5)
    crowd.shifts = ShiftPlan(
        driver=np.arange(n_drivers, dtype=np.int32), day=np.zeros(n_drivers, dtype=np.int32),
        kind=np.zeros(n_drivers, dtype=np.int8), start=start, end=start + minutes,
        breaks=np.full((n_drivers, MAX_BREAKS), np.inf), break_min=60.0,
        driver_kind=np.zeros(n_drivers, dtype=np.int8),
    )
    crowd.driver_depot = np.zeros(n_drivers, dtype=np.int64)
    return crowd


@pytest.mark.slow
def test_a_fleet_larger_than_the_old_random_buffer() -> None:
    """More drivers move in one pass than the old fixed 2**20-entry random buffer held ("operands could not
    be broadcast" once; draws are keyed per driver now): both engines run it, and agree. Small in memory: a
    few minutes of a tiny region."""
    n = (1 << 20) + 4096
    base = build_engine(SimParams("ring_city", 10, 30.0, 0, 1, 5, policy=None, max_shift_h=2))
    # drivers head home once the longest trip home (at the worst congestion) could make them late: give
    # them two minutes of cruising before that
    home_max = base.depot_time[0].max() * congestion(np.arange(168)).max() + base.s.return_buffer_min
    got = _crowd(base, Engine, n, home_max + 2.0).run()
    want = _crowd(base, NumpyEngine, n, home_max + 2.0).run()
    assert_same_output(got, want)
    assert got.decisions >= n  # the first pass alone moved every driver
    spent = got.min_vacant + got.min_occupied + got.min_break + got.min_return
    np.testing.assert_allclose(spent, got.t_end - got.shifts.start, rtol=0, atol=1e-6)



KERNELS = ("drive_span", "bellman_sweeps", "plan_solve", "plan_mix")


def test_importing_the_app_compiles_every_signature_a_run_uses() -> None:
    """The app's import warms the kernels (a sweep imports it before forking jobs) with exactly the
    argument types real runs pass, so a forked job never compiles or loads anything."""
    import experiment.app  # noqa: F401
    from experiment.sim import kernels

    warmed = {name: set(getattr(kernels, name).signatures) for name in KERNELS}
    assert all(warmed.values())
    build_engine(RING_NAV).run()
    build_engine(SimParams("ring_city", 5, 30.0, 0, 1, 2, policy=None, max_shift_h=1)).run()
    value_iteration(*tiny_mdp(0), 0.9, max_iter=3)
    assert {name: set(getattr(kernels, name).signatures) for name in KERNELS} == warmed


def test_cache_dir_falls_back_to_a_writable_temporary_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    from experiment.sim import kernels

    monkeypatch.setenv("NUMBA_CACHE_DIR", "")  # recorded, so the fallback set below is undone afterwards
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setattr(kernels, "_writable", lambda path: False)
    kernels._ensure_cache_dir()
    assert os.environ["NUMBA_CACHE_DIR"].endswith(f"navitune-numba-{os.getuid()}")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere/else")
    kernels._ensure_cache_dir()
    assert os.environ["NUMBA_CACHE_DIR"] == "/somewhere/else"  # an explicit choice is kept
