"""docs/quickstart.md keeps the steps its e2e test runs (tests/e2e/test_quickstart.py)."""

from __future__ import annotations

import pytest

from driftloop_testkit.docs import QUICKSTART, marked_steps, rewrite


def test_the_quickstart_marks_install_upload_train_serve_predict_and_status() -> None:
    script = "\n".join(marked_steps(QUICKSTART.read_text()))
    for needle in (
        "helm install driftloop charts/driftloop -n driftloop-system",
        "kubectl driftloop upload docs/examples/iris.csv --to data/iris.csv",
        "docs/examples/01-dataset.yaml",
        "docs/examples/03-deployment.yaml",
        "/v2/models/iris/infer",
        "kubectl driftloop status iris",
    ):
        assert needle in script


def test_a_marker_without_its_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="not directly followed"):
        marked_steps("<!-- quickstart-test -->\ntext\n```sh\necho\n```\n")
    assert marked_steps("<!-- quickstart-test -->\n```sh\necho hi\n```\n") == ["echo hi\n"]


def test_rewrite_refuses_what_is_not_there() -> None:
    assert rewrite("helm install a", {"install a": "install b"}) == "helm install b"
    with pytest.raises(ValueError, match="not in the quickstart"):
        rewrite("helm install a", {"install c": "x"})
