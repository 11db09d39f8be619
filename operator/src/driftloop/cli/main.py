"""``kubectl driftloop``: status, approve, reject, retrain, upload.

Installed as the ``kubectl-driftloop`` script (``pip install 'driftloop[kubectl]'``), so
kubectl finds it on PATH as a plugin.  It reads the kubeconfig as kubectl does
(``$KUBECONFIG``, ``~/.kube/config``; ``--kubeconfig``, ``--context``) and defaults to the
context's namespace.

It never writes a user object's spec:

* ``approve``/``reject VERSION`` set ``driftloop.dev/approval`` on the ModelVersion, the
  annotation the operator honours over the evaluation gates and the promotion policy;
* ``retrain DEPLOYMENT`` sets ``driftloop.dev/retrain-request`` to a new request id on the
  Deployment: the operator starts one TrainingRun for it from ``spec.retraining.template``
  when cooldown and maxConcurrent admit it, as for a drift trigger;
* ``upload`` creates its own ConfigMaps and Job (PVC mode) or PUTs to the bucket (S3).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop import naming, retraining
from driftloop.api import (
    APPROVAL_ANNOTATION,
    DATASET,
    DEPLOYMENT,
    GROUP,
    MODEL_VERSION,
    RETRAIN_REQUEST_ANNOTATION,
    TRAINING_RUN,
    VERSION,
    KindInfo,
)
from driftloop.cli import lineage
from driftloop.cli.upload import UploadError, dataset_source, pvc_upload, split_s3
from driftloop.config import OperatorConfig

Obj = dict[str, Any]
DEFAULT_CLAIM = "driftloop-artifacts"


class CliError(Exception):
    """A failure to report in one line, without a traceback."""


# --------------------------------------------------------------------------- plumbing


class Cluster:
    """The API clients of one kubeconfig context, and its namespace."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None):
        try:
            from kubernetes import client
            from kubernetes import config as kubeconfig_loader
        except ImportError as exc:
            raise CliError(
                f"the kubernetes package is missing ({exc}): pip install 'driftloop[kubectl]'"
            ) from exc
        config: Any = kubeconfig_loader  # untyped module
        try:
            config.load_kube_config(config_file=kubeconfig, context=context)
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            if context:
                contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
                active = next((c for c in contexts if c["name"] == context), active)
            default_ns = (active.get("context") or {}).get("namespace") or "default"
        except config.ConfigException:
            config.load_incluster_config()
            default_ns = "default"
        self.namespace: str = namespace or default_ns
        self.api = client.ApiClient()
        self.custom: Any = client.CustomObjectsApi(self.api)
        self.core: Any = client.CoreV1Api(self.api)
        self.batch: Any = client.BatchV1Api(self.api)

    def get(self, kind: KindInfo, name: str) -> Obj | None:
        """One of our objects in the namespace, or None."""
        from kubernetes.client.exceptions import ApiException

        try:
            return dict(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, kind.plural, name
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise CliError(f"cannot read {kind.plural}/{name}: {exc.status} {exc.reason}") from exc

    def list(self, kind: KindInfo, selector: str = "") -> list[Obj]:
        """Our objects of ``kind`` in the namespace."""
        result = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, kind.plural, label_selector=selector
        )
        return list(result.get("items") or [])

    def annotate(self, plural: str, name: str, key: str, value: str) -> None:
        """Merge-patch one annotation (metadata only: never the spec)."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                plural,
                name,
                {"metadata": {"annotations": {key: value}}},
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            raise CliError(f"cannot annotate {plural}/{name}: {exc.status} {exc.reason}") from exc


def wait_until(check: Callable[[], Any], seconds: float, interval: float = 1.0) -> Any:
    """``check()``'s first truthy result within ``seconds``, else None."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def _condition(obj: Obj | None, type_: str) -> Obj:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


# --------------------------------------------------------------------------- commands


def cmd_status(args: argparse.Namespace, cluster: Cluster) -> int:
    selector = f"{naming.LABEL_MODEL}={args.model}"
    tree = lineage.lineage(
        args.model,
        cluster.namespace,
        cluster.list(DATASET),
        cluster.list(TRAINING_RUN),
        cluster.list(MODEL_VERSION, selector),
        cluster.list(DEPLOYMENT),
    )
    sys.stdout.write(lineage.render(tree))
    return 0


def _set_approval(args: argparse.Namespace, cluster: Cluster, value: str) -> int:
    name = args.version
    if cluster.get(MODEL_VERSION, name) is None:
        raise CliError(
            f"ModelVersion {name} not found in {cluster.namespace} "
            f"(kubectl get modelversions -n {cluster.namespace})"
        )
    cluster.annotate(MODEL_VERSION.plural, name, APPROVAL_ANNOTATION, value)
    print(f"modelversion/{name} annotated {APPROVAL_ANNOTATION}={value}")

    def applied() -> Obj | None:
        mv = cluster.get(MODEL_VERSION, name)
        status = (mv or {}).get("status") or {}
        return dict(status) if status.get("approval") == value else None

    status = wait_until(applied, args.wait) if args.wait > 0 else None
    if status:
        print(f"{name}: {status['approval']} ({status.get('approvalReason', '')})")
    elif args.wait > 0:
        print(f"{name}: the operator has not recorded it yet (is it running?)")
        return 1
    return 0


def cmd_approve(args: argparse.Namespace, cluster: Cluster) -> int:
    return _set_approval(args, cluster, "approved")


def cmd_reject(args: argparse.Namespace, cluster: Cluster) -> int:
    return _set_approval(args, cluster, "rejected")


def cmd_retrain(args: argparse.Namespace, cluster: Cluster) -> int:
    ns, name = cluster.namespace, args.deployment
    dep = cluster.get(DEPLOYMENT, name)
    if dep is None:
        raise CliError(f"Deployment {name} (deployments.driftloop.dev) not found in {ns}")
    if not (dep.get("spec") or {}).get("retraining"):
        raise CliError(f"Deployment {name} has no spec.retraining.template to train from")
    request = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    run_name = naming.retraining_run(
        name, retraining.REQUEST_TRIGGER, retraining.request_window(request)
    )
    cluster.annotate(DEPLOYMENT.plural, name, RETRAIN_REQUEST_ANNOTATION, request)
    print(f"deployment.driftloop.dev/{name}: retrain request {request}")
    if args.wait <= 0:
        print(f"the operator will start TrainingRun {run_name} when admitted")
        return 0

    def outcome() -> tuple[str, str] | None:
        if cluster.get(TRAINING_RUN, run_name) is not None:
            return ("started", f"started TrainingRun {run_name}")
        cond = _condition(cluster.get(DEPLOYMENT, name), "Retraining")
        message = str(cond.get("message", ""))
        if cond.get("status") == "False" and message.startswith(f"retrain request {request}:"):
            return ("refused", f"{cond.get('reason')}: {message}")
        return None

    result = wait_until(outcome, args.wait)
    if result is None:
        print("the operator has not acted on it yet (is it running?)")
        return 1
    verdict, message = result
    print(message)
    if verdict == "refused":
        print(
            "the request stays pending until admitted; remove the annotation to cancel: "
            f"kubectl annotate deployment.driftloop.dev/{name} "
            f"{RETRAIN_REQUEST_ANNOTATION}- -n {ns}"
        )
        return 1
    return 0


def cmd_upload(args: argparse.Namespace, cluster: Cluster) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    if args.to.startswith("s3://"):
        return _upload_s3(args, cluster, data)
    target = upload_to_claim(
        cluster.core,
        cluster.batch,
        cluster.namespace,
        args.claim,
        args.image,
        args.to,
        data,
        timeout=args.timeout,
        log=print,
    )
    print(f"wrote {len(data)} bytes to {target} on claim {args.claim} in {cluster.namespace}")
    print(f"Dataset source: {dataset_source(args.to)}")
    return 0


def upload_to_claim(
    core: Any,
    batch: Any,
    namespace: str,
    claim: str,
    image: str,
    to: str,
    data: bytes,
    *,
    timeout: float = 300,
    log: Callable[[str], None] = lambda _: None,
) -> str:
    """Write ``data`` to ``/artifacts/<to>`` on ``claim`` with ConfigMaps and a Job (the
    ``CoreV1Api`` and ``BatchV1Api`` given); the path written.  The ConfigMaps are deleted
    afterwards, the Job 5 minutes after it finished (its TTL)."""
    from kubernetes.client.exceptions import ApiException

    ns = namespace
    try:
        core.read_namespaced_persistent_volume_claim(claim, ns)
    except ApiException as exc:
        if exc.status == 404:
            raise CliError(
                f"no PersistentVolumeClaim {claim} in {ns}: is driftloop installed here?"
            ) from exc
        raise
    name = f"driftloop-upload-{uuid.uuid4().hex[:8]}"
    plan = pvc_upload(name, ns, claim, image, to, data)
    try:
        for cm in plan.config_maps:
            core.create_namespaced_config_map(ns, cm)
        batch.create_namespaced_job(ns, plan.job)
        log(f"job/{name}: writing {plan.target} ({len(data)} bytes, image {image})")

        def finished() -> str | None:
            status = batch.read_namespaced_job_status(name, ns).status
            if status.succeeded:
                return "ok"
            for cond in status.conditions or []:
                if cond.type == "Failed" and cond.status == "True":
                    return f"failed: {cond.reason}: {cond.message}"
            return None

        result = wait_until(finished, timeout)
        if result != "ok":
            raise CliError(
                f"job/{name} {result or f'did not finish in {timeout:g}s'}; "
                f"its pods: {_pod_states(core, ns, name)}"
            )
    finally:
        for cm in plan.config_maps:
            with contextlib.suppress(ApiException):
                core.delete_namespaced_config_map(cm["metadata"]["name"], ns)
    return plan.target


def _pod_states(core: Any, namespace: str, job: str) -> str:
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}")
    states = []
    for pod in pods.items:
        text = f"{pod.metadata.name} {pod.status.phase}"
        for cond in pod.status.conditions or []:
            if cond.status != "True" and cond.message:
                text += f" ({cond.reason}: {cond.message})"
        for cs in pod.status.container_statuses or []:
            waiting = cs.state.waiting if cs.state else None
            if waiting and waiting.reason:
                text += f" ({waiting.reason}: {waiting.message or ''})"
        states.append(text)
    return "; ".join(states) or "none"


def _upload_s3(args: argparse.Namespace, cluster: Cluster, data: bytes) -> int:
    bucket, key = split_s3(args.to)
    if args.secret:
        keys = {
            k: _secret_value(cluster, args.secret, k)
            for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        }
    else:
        keys = {k: os.environ.get(k, "") for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        if not all(keys.values()):
            raise CliError(
                "S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name the "
                "namespace's Secret with --secret (the chart's artifacts.s3.secretName)"
            )
    endpoint = (args.endpoint or os.environ.get("AWS_ENDPOINT_URL") or "").rstrip("/")
    s3_put(bucket, key, data, endpoint=endpoint, **_keys(keys))
    print(f"wrote {len(data)} bytes to s3://{bucket}/{key}{f' at {endpoint}' if endpoint else ''}")
    print(f"Dataset source: {dataset_source(args.to)}")
    return 0


def _keys(keys: dict[str, str]) -> dict[str, str]:
    return {"access_key": keys["AWS_ACCESS_KEY_ID"], "secret_key": keys["AWS_SECRET_ACCESS_KEY"]}


def _secret_value(cluster: Cluster, secret: str, key: str) -> str:
    import base64

    from kubernetes.client.exceptions import ApiException

    try:
        obj = cluster.core.read_namespaced_secret(secret, cluster.namespace)
    except ApiException as exc:
        raise CliError(f"cannot read Secret {secret} in {cluster.namespace}: {exc.reason}") from exc
    value = (obj.data or {}).get(key)
    if not value:
        raise CliError(f"Secret {secret} in {cluster.namespace} has no key {key}")
    return base64.b64decode(value).decode()


def s3_put(
    bucket: str, key: str, data: bytes, *, endpoint: str, access_key: str, secret_key: str
) -> None:
    """One PUT of ``data`` to ``bucket``/``key`` (path-style when an endpoint is given, as
    MinIO and most self-hosted stores need)."""
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError as exc:
        raise CliError(
            f"S3 uploads need obstore ({exc}): pip install 'driftloop[kubectl]'"
        ) from exc
    config: dict[str, Any] = {"access_key_id": access_key, "secret_access_key": secret_key}
    options: dict[str, Any] = {}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        config["region"] = region
    if endpoint:
        config.update(endpoint=endpoint, virtual_hosted_style_request=False)
        options["allow_http"] = endpoint.startswith("http://")
    try:
        store = S3Store(bucket, config=config, client_options=options)  # type: ignore[arg-type]
        obstore.put(store, key, data)
    except Exception as exc:  # object_store's errors carry a long debug dump
        detail = " ".join(str(exc).split("\n\nDebug source", 1)[0].split())[:400]
        raise CliError(f"cannot write s3://{bucket}/{key}: {detail}") from exc


# --------------------------------------------------------------------------- parser


def parser() -> argparse.ArgumentParser:
    # The cluster options go before or after the command, as with kubectl itself.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-n", "--namespace", default=argparse.SUPPRESS, help="namespace (default: the context's)"
    )
    common.add_argument(
        "--kubeconfig",
        default=argparse.SUPPRESS,
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)",
    )
    common.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context")
    top = argparse.ArgumentParser(
        prog="kubectl driftloop",
        description="driftloop from kubectl: lineage, approvals, retraining, data uploads.",
        parents=[common],
    )
    top.set_defaults(namespace=None, kubeconfig=None, context=None)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "status", parents=[common], help="the lineage of a model: data, runs, versions, serving"
    )
    p.add_argument("model", help="model name (spec.model of its runs and versions)")
    p.set_defaults(func=cmd_status)

    for name, func, verb in (
        ("approve", cmd_approve, "approved"),
        ("reject", cmd_reject, "rejected"),
    ):
        p = sub.add_parser(
            name, parents=[common], help=f"mark a ModelVersion {verb} ({APPROVAL_ANNOTATION})"
        )
        p.add_argument("version", help="ModelVersion name, e.g. iris-v2")
        p.add_argument(
            "--wait", type=float, default=30, help="seconds to wait for the operator (0: none)"
        )
        p.set_defaults(func=func)

    p = sub.add_parser(
        "retrain", parents=[common], help="start a retraining run now, admitted like a trigger's"
    )
    p.add_argument("deployment", help="Deployment (deployments.driftloop.dev) name")
    p.add_argument(
        "--wait", type=float, default=30, help="seconds to wait for the operator (0: none)"
    )
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("upload", parents=[common], help="put a local file on the artifact store")
    p.add_argument("file", help="local file")
    p.add_argument(
        "--to",
        required=True,
        help="data/iris.csv (on the artifact PVC, read as /artifacts/data/iris.csv) or "
        "s3://bucket/key",
    )
    p.add_argument(
        "--claim", default=DEFAULT_CLAIM, help=f"PVC mode: the claim (default {DEFAULT_CLAIM})"
    )
    p.add_argument(
        "--image",
        default=os.environ.get("DRIFTLOOP_RUNTIME_IMAGE", OperatorConfig.runtime_image),
        help="PVC mode: an image with python3 for the Job (default: the runtime image)",
    )
    p.add_argument(
        "--timeout", type=float, default=300, help="PVC mode: seconds to wait for the Job"
    )
    p.add_argument("--secret", help="S3 mode: the namespace's Secret with the AWS_* keys")
    p.add_argument("--endpoint", help="S3 mode: endpoint URL (default $AWS_ENDPOINT_URL)")
    p.set_defaults(func=cmd_upload)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cluster = Cluster(args.kubeconfig, args.context, args.namespace)
        return int(args.func(args, cluster))
    except (CliError, UploadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
