"""Dataset: validate, digest and profile the data in a Job; track versions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import ValidationError

import driftloop_contract as contract
from driftloop import builders, conditions, naming, policies
from driftloop.api import DatasetPhase, DatasetSpec, parse_duration

from ._outcome import Context, Event, Obj, Outcome, StatusWriter, owner_of
from ._pods import announce, job_problem

HISTORY_LIMIT = 10
#: Seconds between checks for a missing artifact claim or credentials Secret.
ARTIFACT_STORE_RECHECK = 15.0


def next_refresh(spec: DatasetSpec, created: str, now: datetime) -> float | None:
    """Seconds until the next refresh window starts (None: the Dataset never refreshes)."""
    if not spec.refresh_interval:
        return None
    interval = max(parse_duration(spec.refresh_interval).total_seconds(), 1.0)
    start = datetime.fromisoformat(created.replace("Z", "+00:00"))
    windows = refresh_window(spec, created, now) + 1
    return (start.timestamp() + windows * interval) - now.timestamp()


def refresh_window(spec: DatasetSpec, created: str, now: datetime) -> int:
    """Index of the current refresh window (0 when the Dataset never refreshes)."""
    if not spec.refresh_interval:
        return 0
    start = datetime.fromisoformat(created.replace("Z", "+00:00"))
    interval = parse_duration(spec.refresh_interval).total_seconds()
    return max(0, int((now - start).total_seconds() // max(interval, 1.0)))


def _delete_superseded_profiles(ctx: Context, body: Obj, keep: str) -> None:
    """Drop the profile Jobs of earlier generations and refresh windows.

    Their results are in status already; without this a Dataset refreshed hourly
    would keep 24 Jobs (and their pods) a day until it is deleted.
    """
    meta = body["metadata"]
    jobs = ctx.kube.list_jobs(meta["namespace"], builders.profile_jobs_selector(meta["name"]))
    for name in policies.superseded_jobs(jobs, meta["uid"], keep):
        ctx.kube.delete_job(meta["namespace"], name)


def _missing_artifact_store(ctx: Context, namespace: str) -> str | None:
    """Why the namespace cannot hold artifacts yet, or None.

    Checked before starting any Job: a pod whose PVC or Secret is missing hangs in
    Pending or CreateContainerConfigError instead of failing with a reason.
    """
    config = ctx.config
    if config.s3:
        secret = config.artifact_s3_secret or ""
        if not ctx.kube.secret_exists(namespace, secret):
            return (
                f"Secret {secret!r} with the S3 credentials ({', '.join(contract.S3_SECRET_KEYS)}) "
                f"not found in {namespace}"
            )
        return None
    if not ctx.kube.pvc_exists(namespace, config.artifact_pvc):
        return f"PersistentVolumeClaim {config.artifact_pvc!r} not found in {namespace}"
    return None


def reconcile_dataset(ctx: Context, body: Obj) -> Outcome:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    status = StatusWriter(body, ctx.now_text)
    try:
        spec = DatasetSpec.model_validate(body["spec"])
    except ValidationError as error:
        status.fields["phase"] = DatasetPhase.failed
        status.ready(False, "InvalidSpec", str(error))
        return status.outcome(phase=DatasetPhase.failed)
    missing = _missing_artifact_store(ctx, namespace)
    if missing:
        status.fields["phase"] = DatasetPhase.pending
        status.ready(False, "ArtifactStoreMissing", missing)
        # Claims and Secrets are not watched: look again soon.
        return status.outcome(phase=DatasetPhase.pending, requeue_after=ARTIFACT_STORE_RECHECK)

    generation = status.generation
    refresh = refresh_window(spec, meta["creationTimestamp"], ctx.now)
    wake = next_refresh(spec, meta["creationTimestamp"], ctx.now)
    if wake is not None:
        status.wake_in(wake)
    job_name = naming.profile_job(name, generation, refresh)
    events: list[Event] = []
    job = ctx.kube.get_job(namespace, job_name)
    if job is None:
        manifest = builders.profile_job(owner_of(body), spec, generation, refresh, ctx.config)
        job, created = ctx.kube.create(manifest)
        if created:
            events.append(Event("Normal", "Profiling", f"started Job {job_name}"))
    outcome = policies.job_outcome(job)
    previous = status.current
    has_version = bool(previous.get("version")) and previous.get("observedGeneration") == generation

    if not outcome.finished:
        if has_version:
            # A refresh is running; the current version stays valid, and Ready says so
            # even while the refresh's pod cannot run (its Job's deadline ends it).
            # After a refused refresh the refusal stands until a profile says otherwise.
            phase = DatasetPhase.ready if conditions.is_true(previous) else previous["phase"]
            status.fields["phase"] = phase
            return status.outcome(events, phase)
        status.fields["phase"] = DatasetPhase.validating
        problem = job_problem(ctx, job)
        if problem is None:
            status.ready(
                False, "Validating", f"Job {job_name} is validating and profiling the data"
            )
        else:
            status.ready(False, problem.reason, problem.message)
            events.extend(announce(problem, conditions.get_condition(previous, conditions.READY)))
        return status.outcome(events, DatasetPhase.validating)

    pods: Sequence[Obj] = ctx.kube.list_pods(namespace, f"job-name={job_name}")
    if outcome.succeeded:
        pods = policies.succeeded_pods(pods, contract.COMMAND_PROFILE)
    result = policies.parse_profile_result(
        policies.termination_message(pods, contract.COMMAND_PROFILE)
    )
    if outcome.succeeded and result is not None and result.ok:
        digest = result.digest or ""
        # The Job's completion time, not "now": re-reconciling changes nothing.
        finished = (job.get("status") or {}).get("completionTime") or ctx.now_text
        history = list(previous.get("history") or [])
        if not history or history[0].get("digest") != digest:
            history.insert(
                0, {"digest": digest, "rows": result.rows or 0, "observedTime": finished}
            )
            if previous.get("version") and previous.get("version") != digest:
                events.append(Event("Normal", "NewVersion", f"dataset content changed: {digest}"))
        status.fields.update(
            phase=DatasetPhase.ready,
            version=digest,
            rows=result.rows,
            columns=result.columns,
            profileUri=result.profile_uri,
            snapshotUri=result.snapshot_uri,
            lastRefreshTime=finished,
            history=history[:HISTORY_LIMIT],
        )
        status.ready(True, "Validated", f"{result.rows} rows, {result.columns} columns, {digest}")
        _delete_superseded_profiles(ctx, body, keep=job_name)
        if not conditions.is_true(previous):
            events.append(Event("Normal", "Validated", f"{result.rows} rows, version {digest}"))
        return status.outcome(events, DatasetPhase.ready)

    if outcome.succeeded and not pods and has_version:
        # The pod that succeeded is gone (pod GC, a node drain, someone freeing the
        # artifact PVC): the version in status was read from it, or, for a refresh, the
        # current version stays until the next window reads the data again.
        status.fields["phase"] = DatasetPhase.ready
        if not conditions.is_true(previous):  # e.g. the artifact store was missing a while
            rows, columns, version = (previous.get(k) for k in ("rows", "columns", "version"))
            status.ready(True, "Validated", f"{rows} rows, {columns} columns, {version}")
        return status.outcome(events, DatasetPhase.ready)
    # A Job that completed without a readable result is not "JobComplete".
    reason = (policies.refusal_reason(result) if result else None) or (
        "ResultUnreadable" if outcome.succeeded else outcome.reason
    )
    message = policies.failure_text(result, outcome.message or f"Job {job_name} failed")
    if previous.get("version"):
        # Nothing is lost: status.version and history still name the last good content.
        message += f" (the last validated version, {previous['version']}, is kept)"
    status.fields["phase"] = DatasetPhase.failed
    status.ready(False, reason, message)
    if conditions.is_true(previous) or previous.get("phase") != DatasetPhase.failed:
        events.append(Event("Warning", reason, message))
    return status.outcome(events, DatasetPhase.failed)
