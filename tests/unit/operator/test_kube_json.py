"""The real client hands the reconcilers the JSON the API server sent, unchanged.

A small HTTP server plays the API server, so the official client's whole path runs:
its models would render timestamps again (``+00:00`` for the server's ``Z``), and
an object a create returned would differ from the same object as kopf's watch
delivers it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from driftloop.api import TRAINING_RUN
from driftloop.kube import Kube

CREATED = "2026-12-02T04:43:01Z"
JOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "iris-train", "namespace": "ns", "creationTimestamp": CREATED},
    "status": {"startTime": "2026-12-02T04:43:02Z"},
}
RUN: dict[str, Any] = {
    "apiVersion": "driftloop.dev/v1alpha1",
    "kind": "TrainingRun",
    "metadata": {"name": "iris", "namespace": "ns", "creationTimestamp": CREATED},
    "status": {"startTime": CREATED},
}


class ApiServer(BaseHTTPRequestHandler):
    #: (method, path) -> (status, body, headers)
    answers: dict[tuple[str, str], tuple[int, Any, dict[str, str]]] = {}

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status, body, headers = self.answers.get(
            (self.command, self.path.split("?")[0]), (404, {"kind": "Status", "code": 404}, {})
        )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def kube() -> Iterator[Kube]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    yield Kube(client.ApiClient(configuration), timeout=(2.0, 5.0))
    server.shutdown()
    server.server_close()


def test_a_created_job_keeps_the_servers_timestamps(kube: Kube) -> None:
    ApiServer.answers = {("POST", "/apis/batch/v1/namespaces/ns/jobs"): (201, JOB, {})}
    job, created = kube.create(JOB)
    assert created
    assert job == JOB
    assert job["metadata"]["creationTimestamp"] == CREATED


def test_an_existing_job_is_read_back_unchanged(kube: Kube) -> None:
    ApiServer.answers = {
        ("POST", "/apis/batch/v1/namespaces/ns/jobs"): (409, {"kind": "Status"}, {}),
        ("GET", "/apis/batch/v1/namespaces/ns/jobs/iris-train"): (200, JOB, {}),
    }
    assert kube.create(JOB) == (JOB, False)


def test_reads_lists_and_status_patches_return_plain_json(kube: Kube) -> None:
    jobs = {"kind": "JobList", "items": [JOB]}
    ApiServer.answers = {
        ("GET", "/apis/batch/v1/namespaces/ns/jobs/iris-train"): (200, JOB, {}),
        ("GET", "/apis/batch/v1/namespaces/ns/jobs"): (200, jobs, {}),
        ("PATCH", "/apis/driftloop.dev/v1alpha1/namespaces/ns/trainingruns/iris/status"): (
            200,
            RUN,
            {},
        ),
    }
    assert kube.get_job("ns", "iris-train") == JOB
    assert kube.get_job("ns", "gone") is None
    assert kube.list_jobs("ns", "a=b") == [JOB]
    assert kube.patch_status(TRAINING_RUN, "ns", "iris", {"phase": "Running"}) == RUN


def test_errors_keep_their_status_and_headers(kube: Kube) -> None:
    ApiServer.answers = {
        ("GET", "/apis/batch/v1/namespaces/ns/jobs/iris-train"): (403, {"kind": "Status"}, {}),
    }
    with pytest.raises(ApiException) as raised:
        kube.get_job("ns", "iris-train")
    assert raised.value.status == 403
