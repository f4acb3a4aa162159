"""Hardening of ``hydra/sweeper=optuna_async`` (issue 10): several sweepers on one study, a journal that
survives a crash, a full disk, and sweeps that always end.

Real sweeps (the apps of ``tests/sweeper_apps`` as subprocesses), real journals, a real MariaDB and a real
tmpfs for the full disk. Helpers are those of ``test_optuna_async_sweeper``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from tests.fixtures.mariadb import MariaDB
from tests.fixtures.tmpfs import tmpfs
from tests.test_optuna_async_sweeper import (
    MYSQL_STORAGE,
    OVER_BUDGET,
    RETRY_OF,
    Run,
    _rdb_trials,
    finish,
    job_overrides,
    journal,
    journal_trials,
    n_finished,
    run,
    start,
    states,
)

pytestmark = pytest.mark.slow
BASELINE = {"x": 0.25, "y": -0.5}
CONTINUOUS = ("x=interval(-5.0,5.0)", "y=interval(-5.0,5.0)", "hydra.sweeper.enqueue=[{x:0.25,y:-0.5}]")


def _one_line(r: Run) -> str:
    """The single non-empty line of a run's stderr (Optuna's "study created/loaded" info lines aside)."""
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("[I ")]
    assert len(lines) == 1, r
    assert "Traceback" not in r.stderr + r.stdout, r
    return lines[0]


def _key(t: FrozenTrial) -> tuple:
    return tuple(sorted(t.params.items()))


# ================================================================ several sweepers on one study
def _assert_cooperated(trials: list[FrozenTrial], runs: list[Run], n_trials: int) -> None:
    c = states(trials)
    assert n_finished(trials) == n_trials and c[TrialState.RUNNING] == 0 and c[TrialState.WAITING] == 0, c
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len({_key(t) for t in done}) == len(done), sorted(_key(t) for t in done)  # no point run twice
    assert sum(t.params == BASELINE for t in done) == 1, [t.params for t in done]
    baseline_jobs = [j for r in runs for j in job_overrides(r.sweep_dir)
                     if float(j["x"]) == BASELINE["x"] and float(j["y"]) == BASELINE["y"]]
    assert len(baseline_jobs) == 1, baseline_jobs
    assert sum(len(job_overrides(r.sweep_dir)) for r in runs) == n_trials


@pytest.mark.parametrize("n_sweepers", [2, 3])
def test_concurrent_sweepers_on_a_journal_run_distinct_points_and_the_baseline_once(
        tmp_path: Path, n_sweepers: int) -> None:
    store = tmp_path / "study.journal"
    n_trials = 5 * n_sweepers
    args = (journal(store), f"hydra.sweeper.n_trials={n_trials}", "sleep_s=0.2", *CONTINUOUS)
    procs = [start("sphere", tmp_path, f"s{i}", *args) for i in range(n_sweepers)]
    runs = [finish(*p, timeout=120.0) for p in procs]
    for r in runs:
        assert r.rc == 0, r
    _assert_cooperated(journal_trials(store, "sphere"), runs, n_trials)


@pytest.mark.parametrize("n_sweepers", [2, 3])
def test_concurrent_sweepers_on_mariadb_run_distinct_points_and_the_baseline_once(
        tmp_path: Path, mariadb: MariaDB, n_sweepers: int) -> None:  # noqa: F811
    env = {"NAVITUNE_DB_PASSWORD": mariadb.password}
    database = mariadb.create_database(f"navitune_coop_{n_sweepers}")
    n_trials = 5 * n_sweepers
    args = (f"hydra.sweeper.storage={mariadb.url(MYSQL_STORAGE, database)}", f"hydra.sweeper.n_trials={n_trials}",
            "sleep_s=0.2", *CONTINUOUS)
    procs = [start("sphere", tmp_path, f"s{i}", *args, env=env) for i in range(n_sweepers)]
    runs = [finish(*p, timeout=120.0) for p in procs]
    for r in runs:
        assert r.rc == 0, r
    _assert_cooperated(_rdb_trials(mariadb, "sphere", database), runs, n_trials)


def _claim_in_process(setting: str, key: str, ready: Any, go: Any, waiting: Any, out: Any) -> None:
    from hydra_plugins.navitune_shared.claims import claim
    from hydra_plugins.navitune_shared.storage import make_storage

    study = optuna.load_study(study_name="claims", storage=make_storage(setting))
    real_symlink, reported = os.symlink, []

    def symlink(*args: Any, **kwargs: Any) -> None:
        """The journal's lock is a symlink: report the first attempt that finds it taken (this process waits)."""
        try:
            real_symlink(*args, **kwargs)
        except FileExistsError:
            if not reported:
                waiting.put(os.getpid())
                reported.append(True)
            raise

    os.symlink = symlink  # this spawned process only, from now on (its set-up above took the lock freely)
    ready.put(os.getpid())
    go.wait()
    out.put(claim(study, key, os.getpid()))


def _claim_race(setting: str, block: Callable[[], None], unblock: Callable[[], None],
                n_waiting: Callable[[Any], int], n: int = 8) -> list[bool]:
    """n processes claim one key while the storage is blocked (the journal's lock held, or the key's row
    inserted by an open transaction); once all of them are seen waiting on it (``n_waiting``, given the
    queue on which journal claimers report a taken lock), ``unblock``. A check-then-write would then see
    the key free in every process (the check does not wait) and let each of them "win"."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, waiting, out = ctx.Queue(), ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_claim_in_process, args=(setting, "navitune:test", ready, go, waiting, out))
             for _ in range(n)]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.get(timeout=120)
        block()
        go.set()
        deadline = time.monotonic() + 60
        while (seen := n_waiting(waiting)) < n:  # all of them inside claim(), held by the storage
            assert time.monotonic() < deadline, f"only {seen} of {n} claimers were seen waiting"
            time.sleep(0.01)
        unblock()
        results = [out.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    return results


def _reported(seen: set[int]) -> Callable[[Any], int]:
    """n_waiting for the journal: the claimers that reported finding its lock taken."""
    import queue

    def count(waiting: Any) -> int:
        while True:
            try:
                seen.add(waiting.get_nowait())
            except queue.Empty:
                return len(seen)
    return count


def test_claim_is_won_by_exactly_one_process_on_a_journal(tmp_path: Path) -> None:
    from optuna.storages.journal import JournalFileSymlinkLock

    from hydra_plugins.navitune_shared.storage import make_storage

    path = tmp_path / "claims.journal"
    setting = f"journal://{path}"
    optuna.create_study(study_name="claims", storage=make_storage(setting))
    lock = JournalFileSymlinkLock(str(path))  # what every writer of the journal waits for
    assert sorted(_claim_race(setting, lock.acquire, lock.release, _reported(set()))) == [False] * 7 + [True]
    study = optuna.load_study(study_name="claims", storage=make_storage(setting))
    assert "navitune:test" in study._storage.get_study_system_attrs(study._study_id)



def test_a_job_holds_one_study_connection_from_start_to_result(mariadb: MariaDB) -> None:  # noqa: F811
    """A job's storage (``shared_storage``: report to the trial, ask the pruner, publish the result) never
    has two database connections open, not even while it starts (Optuna's schema check opens a second one
    while holding the first: at 100 jobs in flight, 100 such moments), and an unreachable server is one line."""
    import sqlalchemy

    from hydra_plugins.navitune_kfp.results import ResultStore
    from hydra_plugins.navitune_shared import storage as storages
    from tests.fixtures.services import free_port

    setting = mariadb.url(database=mariadb.create_database("navitune_one_connection"))
    sweeper = optuna.create_study(study_name="job", storage=storages.make_storage(setting),
                                  pruner=optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0))
    for value in (1.0, 2.0):
        sweeper.enqueue_trial({"x": value})
        done = sweeper.ask({"x": optuna.distributions.FloatDistribution(0.0, 3.0)})
        done.report(value, 0)
        sweeper.tell(done, value)
    number = sweeper.ask({"x": optuna.distributions.FloatDistribution(0.0, 3.0)}).number
    storages._SHARED.clear()  # a job's process: nothing shared yet
    open_now, most = [0], [0]

    def opened(*_: Any) -> None:
        open_now[0] += 1
        most[0] = max(most[0], open_now[0])

    def closed(*_: Any) -> None:
        open_now[0] -= 1

    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "connect", opened)
    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "close", closed)
    try:
        storage = storages.shared_storage(setting)
        study = optuna.load_study(study_name="job", storage=storage,
                                  pruner=optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0))
        trial = optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
        trial.report(5.0, 0)
        assert trial.should_prune()  # worse than the median of the finished trials: the pruner read them
        ResultStore(setting, "job").publish("job-t2-a0", {"status": "COMPLETED", "value": 5.0})
        assert ResultStore(setting, "job").fetch("job-t2-a0") == {"status": "COMPLETED", "value": 5.0}
    finally:
        sqlalchemy.event.remove(sqlalchemy.pool.Pool, "connect", opened)
        sqlalchemy.event.remove(sqlalchemy.pool.Pool, "close", closed)
        storages._SHARED.clear()
    assert most[0] == 1, f"{most[0]} connections open at once"
    with pytest.raises(storages.StorageError, match=r"^optuna_async: cannot reach hydra\.sweeper\.storage="):
        storages.shared_storage(f"mysql+pymysql://navitune:pw@127.0.0.1:{free_port()}/nothing")


def test_claim_is_won_by_exactly_one_process_on_mariadb(mariadb: MariaDB) -> None:  # noqa: F811
    import pymysql

    from hydra_plugins.navitune_shared.storage import make_storage

    database = mariadb.create_database("navitune_claims")
    setting = mariadb.url(database=database)
    study = optuna.create_study(study_name="claims", storage=make_storage(setting))
    other = pymysql.connect(host="127.0.0.1", port=mariadb.port, user=mariadb.user, password=mariadb.password,
                            database=database)

    def hold_the_key() -> None:  # an open transaction holds the key: the claimers' inserts wait for it
        with other.cursor() as cur:
            cur.execute("INSERT INTO study_system_attributes (study_id, `key`, value_json) VALUES (%s, %s, %s)",
                        (study._study_id, "navitune:test", "0"))

    def lock_waits(_: Any) -> int:  # the claimers' INSERTs waiting for the held key's row lock
        import pymysql

        root = pymysql.connect(unix_socket=mariadb.socket, user="root")
        try:
            with root.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'")
                return int(cur.fetchone()[0])
        finally:
            root.close()

    try:
        results = _claim_race(setting, hold_the_key, other.rollback, lock_waits)
    finally:
        other.close()
    assert sorted(results) == [False] * 7 + [True]



def test_the_sweepers_ask_finds_waiting_trials_without_reloading_the_trials_in_flight(tmp_path: Path) -> None:
    """``sweeper_storage``: ``ask()`` pops a trial another process enqueued, and when none waits it reads no
    running trial's intermediate values (Optuna's cache reloads every unfinished trial in full to find them),
    while the cache still knows every trial."""
    import sqlalchemy

    from hydra_plugins.navitune_shared.storage import make_storage, sweeper_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = sweeper_storage(url)
    study = optuna.create_study(study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=1))
    x = optuna.distributions.FloatDistribution(0.0, 1.0)  # (a sampler that reads the trials reads them itself)
    for _ in range(30):
        trial = study.ask({"x": x})
        for step in range(3):
            trial.report(0.1 * step, step)
    other = optuna.load_study(study_name="s", storage=make_storage(url))  # another sweeper, its own storage
    other.enqueue_trial({"x": 0.25})
    statements: list[str] = []
    engine = storage._backend.engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    popped = study.ask({"x": x})
    assert popped.params == {"x": 0.25} and popped.number == 30  # the enqueued trial comes first
    statements.clear()
    fresh = study.ask({"x": x})
    assert fresh.number == 31
    reloads = [q for q in statements if "trial_intermediate_values.trial_id IN" in q]  # many trials at once
    assert statements and not reloads, reloads
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}  # the cache still sees every trial
    assert len(states) == 32 and set(states.values()) == {TrialState.RUNNING}


def test_each_sweeper_on_a_study_has_its_own_reproducible_stream(tmp_path: Path) -> None:
    """The k-th sweeper to open a study draws the same points whenever it is replayed (from the study's
    seed), and not those of the sweepers before it."""
    args = ("hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=11", "x=interval(-5.0,5.0)",
            "y=interval(-5.0,5.0)", "hydra.sweeper.n_jobs=1")
    points = []
    for attempt in ("a", "b"):
        store = tmp_path / f"{attempt}.journal"
        for n in (3, 6):  # a first sweeper, then a second one on the same study
            done = run("sphere", tmp_path, f"{attempt}{n}", journal(store), f"hydra.sweeper.n_trials={n}", *args)
            assert done.rc == 0, done
        points.append([_key(t) for t in sorted(journal_trials(store, "sphere"), key=lambda t: t.number)])
    assert points[0] == points[1]  # replayed: the same streams
    assert len(set(points[0])) == 6  # the second sweeper did not replay the first one's points


def test_stream_seeds_are_distinct_and_the_first_is_the_seed() -> None:
    from hydra_plugins.navitune_optuna.cooperation import stream_seed as _stream_seed

    seeds = [_stream_seed(0, k) for k in range(50)]
    assert seeds[0] == 0 and len(set(seeds)) == 50
    assert seeds == [_stream_seed(0, k) for k in range(50)]
    assert all(0 <= s < 2**32 for s in seeds)


# ============================================================================== a torn journal
def test_torn_journal_is_repaired_on_open_and_the_sweep_resumes(tmp_path: Path) -> None:
    store = tmp_path / "study.journal"
    first = run("sphere", tmp_path, "sweep", journal(store), "hydra.sweeper.n_trials=4")
    assert first.rc == 0, first
    whole = store.read_bytes()
    subprocess.run(["truncate", "-s", "-60", str(store)], check=True)  # a crash in the middle of an append
    torn = store.read_bytes()
    kept = torn[:torn.rfind(b"\n") + 1]

    again = run("sphere", tmp_path, "sweep", journal(store), "hydra.sweeper.n_trials=6")
    assert again.rc == 0, again
    bak = store.with_name(store.name + ".bak")
    assert bak.read_bytes() == torn[len(kept):] and whole.startswith(kept + bak.read_bytes())
    repaired = [line for line in again.stdout.splitlines() if "cut short" in line]
    assert len(repaired) == 1 and str(bak) in repaired[0], again
    assert store.read_bytes().startswith(kept)
    trials = journal_trials(store, "sphere")
    assert n_finished(trials) == 6 and states(trials)[TrialState.RUNNING] == 0, states(trials)
    for line in store.read_bytes().splitlines():
        json.loads(line)  # every record whole

    third = run("sphere", tmp_path, "sweep", journal(store), "hydra.sweeper.n_trials=7")  # and it stays usable
    assert third.rc == 0, third
    assert n_finished(journal_trials(store, "sphere")) == 7


def test_corrupt_journal_record_is_one_line_naming_file_and_line_and_changes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "study.journal"
    first = run("sphere", tmp_path, "sweep", journal(store), "hydra.sweeper.n_trials=2")
    assert first.rc == 0, first
    lines = store.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"op_code": 4, "study_id"\x00garbage\n'
    store.write_bytes(b"".join(lines))
    before = hashlib.sha256(store.read_bytes()).hexdigest()

    again = run("sphere", tmp_path, "again", journal(store), "hydra.sweeper.n_trials=4")
    assert again.rc != 0, again
    line = _one_line(again)
    assert str(store) in line and "line 3" in line, line
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    assert not list(tmp_path.glob("*.bak")) and not list(again.sweep_dir.glob("*/.hydra"))


# ================================================================================== a full disk
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root may mount one; CI runs as root)."""
    with tmpfs(tmp_path / "disk", "1m") as disk:
        yield disk


def test_full_disk_while_jobs_are_set_up_ahead_is_one_line_per_job_and_no_traceback(
        tmp_path: Path, small_disk: Path) -> None:
    """Two jobs at a time and one set up ahead: a job may meet the full disk while process_pool writes its
    ``.hydra/`` files, before its task. That job fails alone like a failing task (one line, no traceback from
    the launcher) and the sweep stops as it does for a task that meets the full disk."""
    store, sweep = small_disk / "optuna" / "study.journal", small_disk / "sweeps"
    args = (journal(store), "hydra.sweeper.n_trials=12", f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_jobs=2",
            "hydra.launcher.n_jobs=2", "hydra.launcher.prepare_ahead=1")
    full = run("sphere", tmp_path, "unused", *args, "write_kb=150", timeout=120.0)
    assert full.rc != 0, full
    assert "disk is full" in _one_line(full)
    assert "Traceback" not in full.stdout + full.stderr, full
    trials = journal_trials(store, "sphere")
    assert states(trials)[TrialState.RUNNING] == 0 and n_finished(trials) < 12


def test_full_disk_stops_the_sweep_in_one_line_and_the_same_command_continues(
        tmp_path: Path, small_disk: Path) -> None:
    """The journal and the jobs' outputs on one small disk; each job writes 150 KiB until one fails with
    ENOSPC (in its task; one job at a time: a job that fails earlier, while process_pool sets it up, is the
    launcher's to report). The sweeper still records that the trial stopped (its disk reserve) and logs no
    traceback, not even from its log file on the full disk."""
    store, sweep = small_disk / "optuna" / "study.journal", small_disk / "sweeps"
    args = (journal(store), "hydra.sweeper.n_trials=12", f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_jobs=1",
            "hydra.launcher.prepare_ahead=0")
    full = run("sphere", tmp_path, "unused", *args, "write_kb=150", timeout=120.0)
    assert full.rc != 0, full
    assert "disk is full" in _one_line(full)
    failed_lines = [line for line in full.stdout.splitlines() if "No space left" in line]
    assert 1 <= len(failed_lines) <= len(list(sweep.glob("*/.hydra"))), full  # at most one line per job
    trials = journal_trials(store, "sphere")
    c = states(trials)
    assert c[TrialState.RUNNING] == 0 and n_finished(trials) < 12, c
    stopped = [t for t in trials if t.user_attrs.get("navitune:stopped")]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert stopped and sorted(_key(t) for t in stopped) == sorted(
        tuple(sorted(t.system_attrs["fixed_params"].items())) for t in waiting)  # to be run again

    assert not list(store.parent.glob(".*.reserve.*"))  # given back
    for blob in sweep.glob("*/blob.bin"):  # room again
        blob.unlink()
    again = run("sphere", tmp_path, "unused", *args, timeout=120.0)
    assert again.rc == 0, again
    trials = journal_trials(store, "sphere")
    c = states(trials)
    assert n_finished(trials) == 12 and c[TrialState.RUNNING] == 0 and c[TrialState.WAITING] == 0, c


def test_a_journal_write_that_fails_on_a_full_disk_leaves_no_torn_record(tmp_path: Path, small_disk: Path
                                                                          ) -> None:
    from hydra_plugins.navitune_shared.storage import make_storage

    store = small_disk / "study.journal"
    study = optuna.create_study(study_name="s", storage=make_storage(f"journal://{store}"))
    filler = small_disk / "filler"
    with filler.open("wb", buffering=0) as f:  # fill the disk: only the journal's last page has room left
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    with pytest.raises(OSError):
        for _ in range(10_000):
            study.enqueue_trial({"x": 1.0}, user_attrs={"pad": "p" * 500})
    data = store.read_bytes()
    assert data.endswith(b"\n")
    for line in data.splitlines():
        json.loads(line)
    filler.unlink()
    assert optuna.load_study(study_name="s", storage=make_storage(f"journal://{store}")).trials


# ========================================================================== a sweep always ends
@pytest.mark.parametrize(("returns", "directions", "shown", "expected"), [
    ("text", "minimize", "returned 'foo'", "takes one number"),
    ("pair", "minimize", "returned 2 values", "takes one number"),
    ("not_a_number", "minimize", "returned nan", "not NaN"),
    ("none", "minimize", "returned None", "takes one number"),
    ("number", "[minimize,minimize]", "returned ", "takes 2 numbers"),
])
def test_a_value_the_study_cannot_take_fails_the_trial_for_good(
        tmp_path: Path, returns: str, directions: str, shown: str, expected: str) -> None:
    store = tmp_path / "study.journal"
    done = run("bad_return", tmp_path, "sweep", journal(store), f"returns={returns}",
               f"hydra.sweeper.direction={directions}", "hydra.sweeper.n_trials=1", timeout=60.0)
    assert done.rc != 0, done
    line = _one_line(done)
    assert shown in line and expected in line, line
    trials = journal_trials(store, "bad_return")
    assert [t.state for t in trials] == [TrialState.FAIL], states(trials)  # no retry
    assert len(job_overrides(done.sweep_dir)) == 1


def test_a_value_the_study_cannot_take_counts_toward_the_failure_rate(tmp_path: Path) -> None:
    """Tolerated (max_failure_rate=0.5 of 4 = 2): the sweep goes on; a third such trial stops it."""
    store = tmp_path / "study.journal"
    done = run("bad_return", tmp_path, "sweep", journal(store), "returns=text", "hydra.sweeper.n_trials=4",
               "hydra.sweeper.max_failure_rate=0.5", "hydra.sweeper.n_jobs=1", "hydra.launcher.prepare_ahead=0",
               timeout=60.0)
    assert done.rc != 0, done
    assert "3 trial(s) failed for good" in _one_line(done)
    assert [t.state for t in journal_trials(store, "bad_return")] == [TrialState.FAIL] * 3


def test_every_trial_failing_at_max_failure_rate_1_ends_with_one_line(tmp_path: Path) -> None:
    """Bound: floor(max_failure_rate * n_trials) + 1 trials fail for good (here 4), each tried at most twice
    (the same error twice ends its retries), plus the trials in flight when the sweep stops."""
    store = tmp_path / "study.journal"
    done = run("faulty", tmp_path, "sweep", journal(store), "mode=always", "hydra.sweeper.n_trials=3",
               "hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.max_retries=5", timeout=90.0)
    assert done.rc != 0, done
    assert "no trial completed" in _one_line(done)
    assert "navitune-test-boom" not in done.stderr
    trials = journal_trials(store, "faulty")
    c = states(trials)
    assert c[TrialState.COMPLETE] == 0 and c[TrialState.RUNNING] == 0, c
    attempts: dict[int, int] = {}
    for t in trials:
        if not t.user_attrs.get("navitune:stopped") and not t.user_attrs.get(OVER_BUDGET):
            origin = t.user_attrs.get(RETRY_OF, t.number)
            attempts[origin] = attempts.get(origin, 0) + 1
    assert sorted(attempts.values())[-4:] == [2, 2, 2, 2] and max(attempts.values()) == 2, attempts
    # 4 trials failed for good, 2 jobs each; at the stop up to 3 trials are in flight (n_jobs and one set up
    # ahead), each of which may be the retry of a trial whose first job failed: 3 + 3 more jobs at most
    assert len(job_overrides(done.sweep_dir)) <= 2 * 4 + 2 * 3


def test_retries_stop_when_a_trial_fails_the_same_way_twice(tmp_path: Path) -> None:
    store = tmp_path / "study.journal"
    done = run("faulty", tmp_path, "sweep", journal(store), "mode=always", "hydra.sweeper.n_trials=1",
               "hydra.sweeper.max_retries=1000000000", "hydra.sweeper.n_jobs=1", "hydra.launcher.prepare_ahead=0",
               timeout=60.0)
    assert done.rc != 0, done
    assert "navitune-test-boom" in _one_line(done)
    assert "the same way twice" in done.stdout, done
    trials = journal_trials(store, "faulty")
    assert [t.state for t in trials] == [TrialState.FAIL] * 2, states(trials)
    assert trials[1].user_attrs[RETRY_OF] == 0


def test_different_errors_are_retried(tmp_path: Path) -> None:
    """mode=raise_first fails a point's first attempt only: the retry runs and completes."""
    store = tmp_path / "study.journal"
    done = run("faulty", tmp_path, "sweep", journal(store), "mode=raise_first",
               f"marker_dir={tmp_path / 'markers'}", "hydra.sweeper.n_trials=2", timeout=60.0)
    assert done.rc == 0, done
    assert states(journal_trials(store, "faulty"))[TrialState.COMPLETE] == 2


def test_an_interrupt_during_the_journal_locks_release_stays_an_interrupt(tmp_path: Path) -> None:
    """Optuna's lock release, interrupted right after it removed the lock, tries to remove it again and raises
    FileNotFoundError over the interrupt; navitune re-raises the interrupt (a stopped sweep exits 130, not 1),
    and a real missing file without an interrupt is still an error."""
    from hydra_plugins.navitune_shared.journal import _release

    class InterruptedRelease:
        def release(self) -> None:
            try:
                raise KeyboardInterrupt
            except BaseException:
                os.unlink(tmp_path / "gone")  # Optuna's clean-up of a file it already removed

    class MissingLock:
        def release(self) -> None:
            os.unlink(tmp_path / "gone")

    with pytest.raises(KeyboardInterrupt):
        _release(InterruptedRelease())
    with pytest.raises(FileNotFoundError):
        _release(MissingLock())
