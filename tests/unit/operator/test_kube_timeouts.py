"""The real client's calls end on a connection that went silent, instead of hanging.

A server that accepts and then never answers is what a connection dropped on the way
looks like to the client (tests/faults/test_stalled_connections.py injects it on the
real cluster).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import urllib3
from kubernetes import client

from driftloop.kube import Kube


@pytest.fixture
def silent_server() -> Iterator[str]:
    """http://127.0.0.1:<port> of a server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    closed = threading.Event()

    def accept() -> None:
        while not closed.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    closed.set()
    listener.close()
    for sock in held:
        sock.close()


def _kube(host: str, timeout: tuple[float, float]) -> Kube:
    configuration = client.Configuration()
    configuration.host = host
    configuration.retries = False  # one attempt: the timeout, not urllib3's retries
    return Kube(client.ApiClient(configuration), timeout=timeout)


def _call_in_thread(kube: Kube) -> list[BaseException]:
    raised: list[BaseException] = []

    def call() -> None:
        try:
            kube.get_job("default", "anything")
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    # A guard against hanging the suite, far above the timeout under test: not a timing claim.
    thread.join(timeout=60)
    assert not thread.is_alive(), "the call is still hanging on a silent connection"
    return raised


def test_a_call_on_a_silent_connection_times_out(silent_server: str) -> None:
    raised = _call_in_thread(_kube(silent_server, timeout=(1.0, 0.5)))
    assert len(raised) == 1
    assert isinstance(raised[0], urllib3.exceptions.ReadTimeoutError), raised


def test_the_default_applies_only_where_a_call_names_no_timeout(silent_server: str) -> None:
    configuration = client.Configuration()
    configuration.host = silent_server
    configuration.retries = False
    api = client.ApiClient(configuration)
    sent: list[object] = []
    request = api.rest_client.request

    def record(*args: object, **kwargs: object) -> object:
        sent.append(kwargs.get("_request_timeout"))
        return request(*args, **kwargs)

    api.rest_client.request = record
    kube = Kube(api, timeout=(1.0, 0.5))
    batch = client.BatchV1Api(kube.api)
    for own in (None, (1.0, 0.25)):
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            batch.read_namespaced_job("anything", "default", _request_timeout=own)
    assert sent == [(1.0, 0.5), (1.0, 0.25)]


def test_kubes_sharing_one_api_client_wrap_it_once() -> None:
    api = client.ApiClient()
    Kube(api, timeout=(1.0, 2.0))
    wrapped = api.rest_client.request
    Kube(api, timeout=(3.0, 4.0))
    assert api.rest_client.request is wrapped
