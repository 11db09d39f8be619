"""The informer-style cache and the client that reads from it."""

from __future__ import annotations

from typing import Any

from driftloop.api import MODEL_VERSION, TRAINING_RUN
from driftloop.cache import CachedKube, ObjectCache
from driftloop.fake import FakeKube


def _obj(kind: str, name: str, rv: str, uid: str = "u", **labels: str) -> dict[str, Any]:
    api = "batch/v1" if kind == "Job" else "driftloop.dev/v1alpha1"
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": uid,
            "resourceVersion": rv,
            "labels": labels,
            "managedFields": [{"manager": "kubectl"}],
        },
    }


def test_an_older_event_never_replaces_a_newer_object() -> None:
    cache = ObjectCache()
    cache.put(_obj("Job", "j", "20"))
    cache.put(_obj("Job", "j", "10"))  # a late watch event after our own write's result
    assert cache.get("batch/v1", "Job", "ml", "j")["metadata"]["resourceVersion"] == "20"  # type: ignore[index]
    cache.put(_obj("Job", "j", "5", uid="new"))  # deleted and made again: a new object
    assert cache.get("batch/v1", "Job", "ml", "j")["metadata"]["uid"] == "new"  # type: ignore[index]


def test_objects_are_stored_without_managed_fields_and_read_as_copies() -> None:
    cache = ObjectCache()
    cache.put({**_obj("Job", "j", "1"), "spec": {"template": {}}, "status": {"active": 1}})
    cache.put({**_obj("TrainingRun", "r", "1"), "spec": {"model": "iris"}})
    read = cache.get("batch/v1", "Job", "ml", "j")
    assert read is not None
    assert "managedFields" not in read["metadata"]
    assert "spec" not in read  # nothing reads a Job's spec: its outcome is in status
    assert read["status"] == {"active": 1}
    assert (cache.get("driftloop.dev/v1alpha1", "TrainingRun", "ml", "r") or {})["spec"]
    read["metadata"]["name"] = "scribbled"
    assert cache.get("batch/v1", "Job", "ml", "j") is not None


def test_selector_lists_use_the_label_index_and_follow_relabels() -> None:
    cache = ObjectCache()
    cache.put(_obj("ModelVersion", "iris-v1", "1", **{"driftloop.dev/model": "iris"}))
    cache.put(_obj("ModelVersion", "wine-v1", "1", **{"driftloop.dev/model": "wine"}))
    names = lambda sel: [  # noqa: E731
        o["metadata"]["name"]
        for o in cache.list("driftloop.dev/v1alpha1", "ModelVersion", "ml", sel)
    ]
    assert names("driftloop.dev/model=iris") == ["iris-v1"]
    assert names("") == ["iris-v1", "wine-v1"]
    cache.put(_obj("ModelVersion", "iris-v1", "2", **{"driftloop.dev/model": "wine"}))
    assert names("driftloop.dev/model=iris") == []
    assert names("driftloop.dev/model=wine") == ["iris-v1", "wine-v1"]
    cache.remove("driftloop.dev/v1alpha1", "ModelVersion", "ml", "wine-v1")
    assert names("driftloop.dev/model=wine") == ["iris-v1"]
    assert len(cache) == 1


def test_the_cached_client_reads_its_own_writes_without_asking_the_server() -> None:
    server = FakeKube([_obj("TrainingRun", "run", "1")])
    cache = ObjectCache()
    kube = CachedKube(server, cache)
    assert kube.get(TRAINING_RUN, "ml", "run") is None  # not seen on the watch yet
    cache.put(server.get(TRAINING_RUN, "ml", "run") or {})
    run = kube.get(TRAINING_RUN, "ml", "run")
    assert run is not None
    kube.patch_status(
        TRAINING_RUN, "ml", "run", {"phase": "Running"}, run["metadata"]["resourceVersion"]
    )
    assert (kube.get(TRAINING_RUN, "ml", "run") or {})["status"] == {"phase": "Running"}
    _, created = kube.create(_obj("Job", "run-train", "0"))
    assert created
    assert kube.get_job("ml", "run-train") is not None
    kube.delete_job("ml", "run-train")
    assert kube.get_job("ml", "run-train") is None
    kube.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "ml"}})
    assert cache.list("v1", "Event", "ml") == []  # our own Events are not cached
    assert kube.list(MODEL_VERSION, "ml") == []


def _event(name: str, rv: str, job: str, job_uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "ml", "uid": f"{name}-uid", "resourceVersion": rv},
        "involvedObject": {"kind": "Job", "name": job, "uid": job_uid},
        "reason": "FailedCreate",
    }


def test_events_are_read_by_the_object_they_are_about_without_a_scan() -> None:
    cache = ObjectCache()
    for i in range(3):
        cache.put(_event(f"a{i}", "1", "a", "a-uid"))
    cache.put(_event("b0", "1", "b", "b-uid"))
    cache.put(_event("old", "1", "a", "a-old-uid"))  # a deleted namesake's: an hour left
    kube = CachedKube(FakeKube(), cache)
    about_a = [e["metadata"]["name"] for e in kube.list_events("ml", "Job", "a", "a-uid")]
    assert about_a == ["a0", "a1", "a2"]
    assert [e["metadata"]["name"] for e in cache.events_about("ml", "b-uid")] == ["b0"]
    assert cache.events_about("other", "a-uid") == []
    # An Event re-pointed (never in practice, but the index must follow) and one removed.
    cache.put(_event("a0", "2", "b", "b-uid"))
    cache.remove("v1", "Event", "ml", "a1")
    assert [e["metadata"]["name"] for e in cache.events_about("ml", "a-uid")] == ["a2"]
    assert [e["metadata"]["name"] for e in cache.events_about("ml", "b-uid")] == ["a0", "b0"]
