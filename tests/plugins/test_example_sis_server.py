"""The local Example SIS behaves like the API the example plugin is written against."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import requests

if TYPE_CHECKING:
    from azorus_example_sis.server import ExampleSis

KEY = "sis-test-key"
MAX_BATCH = 100  # the SIS's documented limit


@pytest.fixture
def sis(example_sis_installed: object) -> Iterator[ExampleSis]:
    from azorus_example_sis.server import MAX_BATCH as limit
    from azorus_example_sis.server import ExampleSis

    assert limit == MAX_BATCH
    with ExampleSis(KEY) as server:
        yield server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["X-Api-Key"] = KEY
        yield session


def test_pages_follow_the_cursor_and_see_later_changes(sis: ExampleSis, http: requests.Session) -> None:
    for n in range(5):
        sis.state.put_student({"family_name": f"F{n}"})
    first = http.get(f"{sis.url}/api/students", params={"limit": 3}).json()
    assert [s["family_name"] for s in first["students"]] == ["F0", "F1", "F2"] and first["more"] is True
    second = http.get(f"{sis.url}/api/students", params={"limit": 3, "since": first["next"]}).json()
    assert [s["family_name"] for s in second["students"]] == ["F3", "F4"] and second["more"] is False
    sis.state.put_student({"given_name": "Changed"}, student_id=first["students"][0]["student_id"])
    third = http.get(f"{sis.url}/api/students", params={"since": second["next"]}).json()
    assert [(s["given_name"], s["family_name"]) for s in third["students"]] == [("Changed", "F0")]
    empty = http.get(f"{sis.url}/api/students", params={"since": third["next"]}).json()
    assert empty == {"students": [], "next": third["next"], "more": False}


@pytest.mark.parametrize("query", [{"since": "42"}, {"limit": "0"}, {"limit": "many"}])
def test_bad_cursor_or_limit_is_400(sis: ExampleSis, http: requests.Session, query: dict[str, str]) -> None:
    response = http.get(f"{sis.url}/api/students", params=query)
    assert response.status_code == 400 and response.json()["error"]


def test_api_key_is_required(sis: ExampleSis) -> None:
    assert requests.get(f"{sis.url}/api/ping", timeout=5).status_code == 401
    assert requests.get(f"{sis.url}/api/ping", headers={"X-Api-Key": "wrong"}, timeout=5).status_code == 401


def test_batch_answers_per_item_and_assigns_ids(sis: ExampleSis, http: requests.Session) -> None:
    existing = sis.state.put_student({"family_name": "Old"})
    items = [
        {"ref": "1", "student": {"family_name": "New", "birth_date": "2005-02-03"}},
        {"ref": "2", "student": {"student_id": existing["student_id"], "email": "old@example.org"}},
        {"ref": "3", "student": {"family_name": "Bad", "birth_date": "03/02/2005"}},
        {"ref": "4", "student": {"student_id": "S999999", "family_name": "Ghost"}},
        {"ref": "5", "student": {"family_name": "X", "shoe_size": "9"}},
    ]
    results = http.post(f"{sis.url}/api/students/batch", json={"items": items}).json()["results"]
    assert [(r["ref"], r["status"]) for r in results] == [
        ("1", 201),
        ("2", 200),
        ("3", 400),
        ("4", 404),
        ("5", 400),
    ]
    assert results[0]["student_id"] not in (None, existing["student_id"])
    assert "ISO date" in results[2]["error"] and "shoe_size" in results[4]["error"]
    assert sis.state.students[existing["student_id"]]["email"] == "old@example.org"
    assert sis.state.batches == [items]


def test_oversized_or_malformed_batch_is_refused_whole(sis: ExampleSis, http: requests.Session) -> None:
    too_many = [{"ref": str(n), "student": {"family_name": "F"}} for n in range(MAX_BATCH + 1)]
    assert http.post(f"{sis.url}/api/students/batch", json={"items": too_many}).status_code == 413
    assert http.post(f"{sis.url}/api/students/batch", data=b"{not json").status_code == 400
    assert sis.state.students == {}


def test_injected_request_failures_then_recovery(sis: ExampleSis, http: requests.Session) -> None:
    sis.state.fail_requests(429, retry_after=7)
    sis.state.fail_requests(503, count=2)
    limited = http.get(f"{sis.url}/api/ping")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    assert [http.get(f"{sis.url}/api/ping").status_code for _ in range(3)] == [503, 503, 200]


def test_reject_switch_refuses_one_item_and_control_endpoint_sets_it(
    sis: ExampleSis, http: requests.Session
) -> None:
    control = requests.post(
        f"{sis.url}/_control/faults",
        json={"reject": {"field": "email", "value": "no@example.org"}},
        timeout=5,
    )
    assert control.status_code == 200
    items = [
        {"ref": "a", "student": {"family_name": "A", "email": "yes@example.org"}},
        {"ref": "b", "student": {"family_name": "B", "email": "no@example.org"}},
    ]
    results = http.post(f"{sis.url}/api/students/batch", json={"items": items}).json()["results"]
    assert [r["status"] for r in results] == [201, 400]
    requests.post(f"{sis.url}/_control/faults", json={"clear": True}, timeout=5)
    again = http.post(f"{sis.url}/api/students/batch", json={"items": items[1:]}).json()["results"]
    assert again[0]["status"] == 201


def test_runs_as_a_program_with_seeded_students(example_sis_installed: object) -> None:
    from azorus_connect.testing.fixtures import free_port

    port = free_port()
    env = {**os.environ, "EXAMPLE_SIS_API_KEY": KEY}
    with subprocess.Popen(
        [sys.executable, "-m", "azorus_example_sis.server", "--port", str(port), "--seed", "3"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            url = f"http://127.0.0.1:{port}/api/students"
            deadline = time.monotonic() + 15
            while True:
                try:
                    page = requests.get(url, headers={"X-Api-Key": KEY}, timeout=2).json()
                    break
                except requests.ConnectionError:
                    assert proc.poll() is None, proc.communicate()[1]
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.05)
            assert [s["given_name"] for s in page["students"]] == ["Student1", "Student2", "Student3"]
            assert requests.get(url, timeout=2).status_code == 401
        finally:
            proc.terminate()
            proc.communicate(timeout=10)


def test_refuses_to_run_without_an_api_key(example_sis_installed: object) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EXAMPLE_SIS_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "azorus_example_sis.server", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "EXAMPLE_SIS_API_KEY" in done.stderr
