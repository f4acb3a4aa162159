"""``backend=remote`` polling with many runs in flight: one shared ``list_runs`` instead of a ``get_run`` per run.

Against the KFP API stand-in (``FakeKFP``, scripted: nothing runs; the test sets run states directly).
"""

from __future__ import annotations

import time

from experiment.standins.kfp_api_server import FakeKFP
from hydra_plugins.navitune_kfp.remote_backend import LIST_ABOVE, RemoteBackend, RunRecord
from hydra_plugins.navitune_kfp.settings import check

GET_ONE = r"/apis/v2beta1/runs/run-\d+"
LIST = "/apis/v2beta1/runs"


def _backend(server: FakeKFP, poll_s: float = 0.2) -> RemoteBackend:
    settings = check({"backend": "remote", "host": server.url, "image": "registry.example/job:1",
                      "poll_interval": poll_s})
    return RemoteBackend(settings, "polling", "test")


def test_many_runs_in_flight_share_one_listing_and_see_their_states() -> None:
    with FakeKFP() as server:
        backend = _backend(server)
        runs = [server.add_run(backend.experiment_id, f"r{i}", "RUNNING") for i in range(LIST_ABOVE + 3)]
        for r in runs:
            backend._watched[r["run_id"]] = time.monotonic()
        time.sleep(0.01)
        lists_before = len(server.calls("GET", LIST))
        polled = [backend._poll(r["run_id"]) for r in runs]
        assert [str(p.state) for p in polled] == ["RUNNING"] * len(runs)
        assert all(isinstance(p, RunRecord) for p in polled)  # read as JSON, not as kfp_server_api models
        assert len(server.calls("GET", LIST)) - lists_before == 1  # one listing served every run
        assert server.calls("GET", GET_ONE) == []
        server.runs[runs[2]["run_id"]]["state"] = "SUCCEEDED"
        assert str(backend._poll(runs[2]["run_id"]).state) == "RUNNING"  # the listing is still fresh
        time.sleep(0.15)  # older than half a poll interval: the next look lists again
        assert str(backend._poll(runs[2]["run_id"]).state) == "SUCCEEDED"
        assert len(server.calls("GET", LIST)) - lists_before == 2
        assert server.calls("GET", GET_ONE) == []


def test_a_run_the_listing_does_not_reach_is_asked_for_alone() -> None:
    with FakeKFP() as server:
        backend = _backend(server)
        old = server.add_run(backend.experiment_id, "old", "RUNNING")
        for i in range(300):  # newer runs of the experiment push the old one past the listed page
            server.add_run(backend.experiment_id, f"other{i}", "RUNNING")
        watched = [old] + [server.add_run(backend.experiment_id, f"w{i}", "RUNNING") for i in range(LIST_ABOVE)]
        for r in watched:
            backend._watched[r["run_id"]] = time.monotonic()
        time.sleep(0.01)
        server.runs[old["run_id"]]["state"] = "FAILED"
        assert str(backend._poll(old["run_id"]).state) == "FAILED"
        assert [c.path for c in server.calls("GET", GET_ONE)] == [f"/apis/v2beta1/runs/{old['run_id']}"]


def test_few_runs_in_flight_keep_one_get_per_run() -> None:
    with FakeKFP() as server:
        backend = _backend(server)
        runs = [server.add_run(backend.experiment_id, f"r{i}", "RUNNING") for i in range(LIST_ABOVE)]
        for r in runs:
            backend._watched[r["run_id"]] = time.monotonic()
        lists_before = len(server.calls("GET", LIST))
        for r in runs:
            backend._poll(r["run_id"])
        assert len(server.calls("GET", GET_ONE)) == len(runs)
        assert len(server.calls("GET", LIST)) == lists_before


def test_find_run_takes_the_newest_run_of_a_name_from_the_raw_listing() -> None:
    with FakeKFP() as server:
        backend = _backend(server)
        server.add_run(backend.experiment_id, "same", "FAILED")
        newer = server.add_run(backend.experiment_id, "same", "RUNNING")
        server.add_run(backend.experiment_id, "other", "RUNNING")
        found = backend.find_run("same")
        assert isinstance(found, RunRecord) and found.run_id == newer["run_id"] and found.state == "RUNNING"
        assert backend.find_run("missing") is None
