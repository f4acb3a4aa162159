"""``backend=remote`` polling with many runs in flight: one shared ``list_runs`` instead of a ``get_run`` per run.

Against the KFP API stand-in (``FakeKFP``, scripted: nothing runs; the test sets run states directly).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tools.standins.kfp_api_server import FakeKFP
from hydra_plugins.navitune_kfp import remote_backend
from hydra_plugins.navitune_kfp.remote_backend import LIST_ABOVE, RemoteBackend, RunRecord, _name_filter
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


def test_a_run_the_listing_does_not_reach_is_asked_for_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_backend, "MAX_LIST_PAGES", 2)  # 2 pages of 25 rows: the old run is not reached
    with FakeKFP() as server:
        backend = _backend(server)
        old = server.add_run(backend.experiment_id, "old", "RUNNING")
        for i in range(300):  # newer runs of the experiment push the old one past the listed pages
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


def test_a_listing_cut_while_its_body_streams_is_retried_and_a_non_json_answer_is_one_line() -> None:
    """Listings are read raw: the body is read inside the retried call, so a connection that breaks while the
    answer streams is retried like any transient failure (the FakeKFP answers; the break is injected between
    the client and its answer)."""
    import urllib3

    from hydra_plugins.navitune_kfp.errors import KFPApiError

    with FakeKFP() as server:
        backend = _backend(server)
        backend.settings = check({"backend": "remote", "host": server.url, "image": "registry.example/job:1",
                                  "api_backoff_s": 0.01})
        server.add_run(backend.experiment_id, "r0", "RUNNING")
        real = backend.client.runs.run_service_list_runs
        breaks = [True]

        class Cut:
            status = 200

            @property
            def data(self) -> bytes:
                raise urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")

        def flaky(**kwargs: Any) -> Any:
            answer = real(**kwargs)
            return Cut() if breaks and breaks.pop() else answer

        backend.client.runs.run_service_list_runs = flaky
        found = backend.find_run("r0")
        assert found is not None and found.state == "RUNNING" and not breaks

        class Html:
            status = 200
            data = b"<html>proxy error</html>"

        backend.client.runs.run_service_list_runs = lambda **kwargs: Html()
        with pytest.raises(KFPApiError, match=r"^list runs: ValueError: the answer is not a JSON object"):
            backend.find_run("r0")


# ------------------------------------------------------------------------------ the stand-in's pages
def _get(server: FakeKFP, path: str, **query: Any) -> tuple[int, dict]:
    url = f"{server.url}/apis/v2beta1{path}?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _all_pages(server: FakeKFP, max_pages: int = 50, between: Any = None, **query: Any) -> list[list[str]]:
    """The run ids of every page, following next_page_token (``between()`` runs after each page)."""
    pages: list[list[str]] = []
    token = ""
    for _ in range(max_pages):
        status, body = _get(server, "/runs", **query, **({"page_token": token} if token else {}))
        assert status == 200, body
        pages.append([r["run_id"] for r in body.get("runs", [])])
        token = body.get("next_page_token", "")
        if not token:
            return pages
        if between is not None:
            between()
    raise AssertionError(f"still a next page after {max_pages} pages")


def test_run_listing_pages_through_every_run_in_order_once_while_runs_are_created() -> None:
    with FakeKFP() as server:
        exp = server.add_experiment("paging")["experiment_id"]
        runs = [server.add_run(exp, f"r{i}") for i in range(45)]
        newest_first = [r["run_id"] for r in reversed(runs)]
        created: list[str] = []
        pages = _all_pages(server, experiment_id=exp, sort_by="created_at desc", page_size=10,
                           between=lambda: created.append(server.add_run(exp, "late")["run_id"]))
        assert [len(p) for p in pages] == [10, 10, 10, 10, 5]  # runs created meanwhile sort before the first page
        assert [rid for p in pages for rid in p] == newest_first
        assert len(created) == 4
        oldest_first = _all_pages(server, experiment_id=exp, sort_by="created_at", page_size=20)
        assert [rid for p in oldest_first for rid in p] == [r["run_id"] for r in runs] + created
        status, body = _get(server, "/runs", experiment_id=exp)  # no page_size: the server's default, 20
        assert len(body["runs"]) == 20 and body["total_size"] == 49 and body["next_page_token"]
        status, body = _get(server, "/runs", experiment_id=exp, page_size=1000)  # clamped to 200, one page
        assert len(body["runs"]) == 49 and "next_page_token" not in body


def test_run_listing_filters_by_name_across_pages() -> None:
    with FakeKFP() as server:
        exp = server.add_experiment("paging")["experiment_id"]
        runs = [server.add_run(exp, "wanted" if i % 3 == 0 else f"other{i}") for i in range(30)]
        wanted = [r["run_id"] for r in runs if r["display_name"] == "wanted"]
        pages = _all_pages(server, experiment_id=exp, filter=_name_filter("wanted"), page_size=4)
        assert [len(p) for p in pages] == [4, 4, 2]
        assert [rid for p in pages for rid in p] == wanted
        assert _all_pages(server, experiment_id=exp, filter=_name_filter("nobody"), page_size=4) == [[]]


@pytest.mark.parametrize("query, message", [
    ({"page_size": -1}, "The page size should be greater than 0"),
    ({"page_size": "ten"}, "page_size must be an integer"),
    ({"page_token": "not-a-token"}, "Invalid page token"),
    ({"sort_by": "colour desc"}, "Invalid sorting field"),
    ({"sort_by": "created_at sideways"}, "invalid sort by format"),
    ({"filter": "{not json"}, "filter must be a JSON Filter"),
])
def test_bad_listing_arguments_are_a_400_naming_the_problem(query: dict, message: str) -> None:
    with FakeKFP() as server:
        status, body = _get(server, "/runs", **query)
        assert status == 400 and body["code"] == 3
        assert message in body["message"]


def test_a_page_token_with_another_sort_is_refused() -> None:
    with FakeKFP() as server:
        exp = server.add_experiment("paging")["experiment_id"]
        for i in range(3):
            server.add_run(exp, f"r{i}")
        _, first = _get(server, "/runs", sort_by="created_at desc", page_size=2)
        status, body = _get(server, "/runs", sort_by="created_at", page_size=2, page_token=first["next_page_token"])
        assert status == 400 and "sort_by or filter differ" in body["message"]
        status, body = _get(server, "/runs", page_size=2, page_token=first["next_page_token"])  # sort from the token
        assert status == 200 and [r["display_name"] for r in body["runs"]] == ["r0"]


def test_more_runs_in_flight_than_one_page_are_all_seen_through_the_next_pages() -> None:
    with FakeKFP() as server:
        backend = _backend(server, poll_s=60.0)  # the listing stays fresh while the test reads it
        n = remote_backend.MAX_PAGE_SIZE + 50  # the launcher's page is at most 200 rows
        runs = [server.add_run(backend.experiment_id, f"r{i}", "RUNNING") for i in range(n)]
        for r in runs:
            backend._watched[r["run_id"]] = time.monotonic()
        time.sleep(0.01)
        server.runs[runs[0]["run_id"]]["state"] = "SUCCEEDED"  # the oldest: on the second page
        lists_before = len(server.calls("GET", LIST))
        assert str(backend._poll(runs[0]["run_id"]).state) == "SUCCEEDED"
        listed = server.calls("GET", LIST)[lists_before:]
        assert len(listed) == 2 and "page_token" not in listed[0].query and listed[1].query["page_token"]
        assert len(backend._listed) == n
        assert all(str(backend._poll(r["run_id"]).state) == "RUNNING" for r in runs[1:])
        assert len(server.calls("GET", LIST)) - lists_before == 2  # one listing (two pages) served every run
        assert server.calls("GET", GET_ONE) == []
