"""Several servers of one model ("replicas"): drift pooled from their per-bin counters.

Three servers each get a third of the traffic (round robin, as a Service spreads it);
a fourth gets all of it in its own window.  The per-bin counters summed over the three
must be the histogram of all the rows sent, and the PSI of that sum must equal the
fourth server's window PSI: the pooled score describes the whole traffic, which no
single replica's own score does.
"""

from __future__ import annotations

import json
import socket
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import driftloop_contract as contract
from driftloop_runtime import drift
from driftloop_testkit.runtime import IRIS_FEATURES, Server, serve_env, start_server

ROWS_PER_REQUEST = 2


@pytest.fixture(scope="module")
def servers(iris_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        for i in range(4):
            scratch = tmp_path_factory.mktemp(f"replica{i}")
            env = serve_env(
                iris_model,
                scratch,
                **{
                    contract.ENV_WORKERS: "2" if i == 0 else "1",
                    # the 4th sees everything: a window large enough for all of it
                    contract.ENV_DRIFT_WINDOW: "5000" if i == 3 else "200",
                },
            )
            started.append(start_server(env, scratch / "server.log"))
        yield started
    finally:
        for s in started:
            assert s.stop() == 0, s.log.read_text()


def scrape(server: Server) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = requests.get(server.url + contract.PATH_METRICS, timeout=10).text
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append((sample.labels, sample.value))
    return out


def traffic(rng: np.random.Generator, n: int, shift: float) -> list[list[Any]]:
    rows = []
    colors = ["red", "green", "blue", "purple"]
    for _ in range(n):
        base = [5.8, 3.0, 3.7, 1.2]
        rows.append(
            [round(b + shift + float(rng.normal(scale=0.6)), 3) for b in base]
            + [colors[int(rng.integers(0, 4 if shift else 3))]]
        )
    return rows


def test_summed_bin_counters_are_the_whole_traffic(servers: list[Server], iris_model: Path) -> None:
    rng = np.random.default_rng(7)
    rows = traffic(rng, 240, 0.0) + traffic(rng, 120, 1.5)
    replicas, everything = servers[:3], servers[3]
    with requests.Session() as http:
        for i in range(0, len(rows), ROWS_PER_REQUEST):
            chunk = rows[i : i + ROWS_PER_REQUEST]
            body = {
                "inputs": [
                    {"name": "x", "shape": [len(chunk), 5], "datatype": "BYTES", "data": chunk}
                ]
            }
            for target in (replicas[(i // ROWS_PER_REQUEST) % 3], everything):
                r = http.post(target.url + "/v2/models/iris/infer", json=body, timeout=10)
                assert r.status_code == 200, r.text
    time.sleep(0.4)  # row buffers flush every 0.1 s

    profile = json.loads((iris_model / contract.PROFILE_FILE).read_text())
    by_name = {f["name"]: f for f in profile["features"]}
    summed: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    reference: dict[str, dict[int, float]] = defaultdict(dict)
    own_scores = []
    total_rows = 0.0
    for server in replicas:
        metrics = scrape(server)
        for labels, value in metrics[contract.METRIC_FEATURE_BIN_ROWS]:
            summed[labels["feature"]][int(labels["bin"])] += value
        for labels, value in metrics[contract.METRIC_FEATURE_REFERENCE]:
            ref = reference[labels["feature"]]
            assert ref.get(int(labels["bin"]), value) == value  # the same on every pod
            ref[int(labels["bin"])] = value
        ((_, counted),) = metrics[contract.METRIC_DRIFT_ROWS]
        total_rows += counted
        own_scores.append(
            {labels["feature"]: value for labels, value in metrics[contract.METRIC_FEATURE_DRIFT]}
        )
    assert total_rows == len(rows)
    assert set(summed) == {*IRIS_FEATURES, "color"}

    whole = {
        labels["feature"]: value
        for labels, value in scrape(everything)[contract.METRIC_FEATURE_DRIFT]
    }
    table = np.array(rows, dtype=object)
    for index, name in enumerate([*IRIS_FEATURES, "color"]):
        counts = np.array([summed[name][b] for b in sorted(summed[name])])
        ref = np.array([reference[name][b] for b in sorted(reference[name])])
        assert abs(ref.sum() - 1.0) < 1e-9
        prof = by_name[name]
        if name == "color":
            codes = {c: k for k, c in enumerate(prof["categories"])}
            expected = np.bincount(
                [codes.get(v, len(codes)) for v in table[:, index]], minlength=len(codes) + 1
            )
        else:
            expected = drift.histogram(
                np.asarray(prof["edges"]), table[:, index].astype(np.float64)
            )
        np.testing.assert_array_equal(counts, expected)
        pooled = drift.psi(ref, counts)
        # the server that saw everything reports the same PSI from its own window
        assert pooled == pytest.approx(whole[name], rel=1e-9, abs=1e-12), name
    # each replica alone saw a third: its own score is not the Deployment's
    assert any(abs(score[name] - whole[name]) > 1e-6 for score in own_scores for name in whole)


# --------------------------------------------------------------------------- feedback
# Three servers find each other through a seed (in a cluster: their Service) and a
# feedback call may go to any of them: the one that made the prediction counts it.


@pytest.fixture(scope="module")
def gossiping(iris_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    ports = []
    for _ in range(3):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
    started: list[Server] = []
    try:
        for i, port in enumerate(ports):
            scratch = tmp_path_factory.mktemp(f"peer{i}")
            env = serve_env(
                iris_model,
                scratch,
                **{
                    contract.ENV_WORKERS: "2" if i == 1 else "1",
                    contract.ENV_PORT: str(port),
                    contract.ENV_POD_IP: "127.0.0.1",
                    contract.ENV_PEERS_SEED: f"127.0.0.1:{ports[0]}",
                },
            )
            started.append(start_server(env, scratch / "server.log"))
        yield started
    finally:
        for s in started:
            assert s.stop() == 0, s.log.read_text()


def peer_table(server: Server) -> set[str]:
    r = requests.post(server.url + contract.PATH_PEERS, json={}, timeout=5)
    assert r.status_code == 200
    return set(r.json()["peers"])


def test_feedback_reaches_the_replica_that_predicted(gossiping: list[Server]) -> None:
    addresses = {s.url.removeprefix("http://") for s in gossiping}

    def converged() -> bool:
        # every worker of every server (a new connection each: any worker may answer)
        return all(peer_table(s) == addresses for s in gossiping for _ in range(4))

    deadline = time.monotonic() + 60
    while not converged():
        assert time.monotonic() < deadline, [peer_table(s) for s in gossiping]
        time.sleep(0.5)

    rng = np.random.default_rng(3)
    sent = []
    for i in range(30):
        rows = traffic(rng, 2, 0.0)
        body = {
            "id": f"req-{i}",
            "inputs": [{"name": "x", "shape": [2, 5], "datatype": "BYTES", "data": rows}],
        }
        r = requests.post(gossiping[i % 3].url + "/v2/models/iris/infer", json=body, timeout=10)
        assert r.status_code == 200, r.text
        sent.append(r.json()["outputs"][0]["data"])
    correct = 0
    for i, preds in enumerate(sent):
        # every third request: the first label is wrong
        labels = [(preds[0] + 1) % 3 if i % 3 == 0 else preds[0], preds[1]]
        correct += sum(int(a == b) for a, b in zip(labels, preds, strict=True))
        other = gossiping[(i + 1) % 3]  # never the server that predicted it
        r = requests.post(
            other.url + "/v2/models/iris/feedback",
            json={"id": f"req-{i}", "labels": labels},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"id": f"req-{i}", "accepted": 2}
    # accepted once, wherever the second call lands
    again = requests.post(
        gossiping[2].url + "/v2/models/iris/feedback",
        json={"id": "req-0", "labels": [0, 0]},
        timeout=10,
    )
    assert again.status_code == 404
    unknown = requests.post(
        gossiping[1].url + "/v2/models/iris/feedback",
        json={"id": "never-sent", "labels": [0]},
        timeout=10,
    )
    assert unknown.status_code == 404
    # the owner's 400 (one label for two rows) comes back through the forwarding pod
    body = {
        "id": "two-rows",
        "inputs": [{"name": "x", "shape": [2, 5], "datatype": "BYTES", "data": traffic(rng, 2, 0)}],
    }
    assert requests.post(gossiping[1].url + "/v2/models/iris/infer", json=body).status_code == 200
    mismatch = requests.post(
        gossiping[0].url + "/v2/models/iris/feedback",
        json={"id": "two-rows", "labels": [0]},
        timeout=10,
    )
    assert mismatch.status_code == 400, mismatch.text

    labeled = right = 0.0
    for server in gossiping:
        metrics = scrape(server)
        labeled += sum(v for _, v in metrics[contract.METRIC_LIVE_LABELED_ROWS])
        right += sum(v for _, v in metrics[contract.METRIC_LIVE_CORRECT_ROWS])
    assert labeled == 60
    assert right == correct == 50


def test_peer_table_merges_ages_and_forgets_silent_peers() -> None:
    from driftloop_runtime.peers import PeerTable

    table = PeerTable("10.0.0.1:8080", ttl=30)
    table.merge(
        {
            "10.0.0.2:8080": 1.0,
            "10.0.0.1:8080": 0.0,  # itself
            "10.0.0.3:8080": 40.0,  # older than the ttl
            "nonsense": 0.0,
            "10.0.0.4:99999": 0.0,
            "10.0.0.5:8080": "recent",
        },
        now=100.0,
    )
    assert table.peers(now=100.0) == ["10.0.0.2:8080"]
    table.merge({"10.0.0.2:8080": 20.0}, now=105.0)  # staler news does not age a peer
    assert table.ages(now=105.0) == {"10.0.0.2:8080": 6.0, "10.0.0.1:8080": 0.0}
    assert table.peers(now=128.5) == ["10.0.0.2:8080"]  # heard of at 99
    assert table.peers(now=129.5) == []  # not heard of for 30 s
    table.merge(["not", "a", "table"], now=131.0)
    assert table.ages(now=131.0) == {"10.0.0.1:8080": 0.0}
