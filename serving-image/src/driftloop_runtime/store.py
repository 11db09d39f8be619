"""``s3://`` artifact stores through fsspec + s3fs.

An object store has no rename, so an artifact set cannot appear atomically as a
directory does.  Instead:

* writing (``upload_set``): the set is sealed in a local scratch dir first
  (artifacts.seal: manifest.json with the sha256 of every file), then every file is
  uploaded under its final prefix and ``manifest.json`` LAST.  A single PUT is atomic,
  so the manifest is the commit marker: a killed upload leaves files without a
  manifest, which every reader treats as "no version here" (and a retried Job
  overwrites them);
* reading (``download_set``): the manifest first (absent -> ArtifactError), then only
  the files it lists, into a local directory, where artifacts.verify checks their
  sha256 exactly as for a volume.  Nothing is trusted because it came from the store.

Configuration is the AWS SDKs' environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
(read by botocore itself) and AWS_ENDPOINT_URL for an S3-compatible server, which is
passed to s3fs explicitly with path-style addressing (MinIO and most self-hosted
servers do not serve virtual-host-style bucket names).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import driftloop_contract as contract
from driftloop_runtime import artifacts

log = logging.getLogger(__name__)


class StoreError(OSError):
    """The object store could not be reached or refused a request.

    An OSError, so callers treat it like any other I/O failure (transient: a Job retries,
    a server refuses to start and the previous version keeps serving).
    """


def is_remote(uri: str) -> bool:
    return uri.startswith(contract.S3_SCHEME)


def join(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/{name}"


def filesystem() -> Any:
    """An s3fs filesystem configured from the environment."""
    import fsspec

    endpoint = os.environ.get(contract.ENV_S3_ENDPOINT) or None
    # No listings cache: a process reads back what it (or another pod) just wrote.
    options: dict[str, Any] = {"use_listings_cache": False}
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
        options["config_kwargs"] = {"s3": {"addressing_style": "path"}}
    try:
        return fsspec.filesystem("s3", **options)
    except ImportError as exc:  # the image always has it; a bare install may not
        raise StoreError(f"s3:// needs the s3fs package: {exc}") from exc


def _fail(action: str, uri: str, exc: Exception) -> StoreError:
    return StoreError(f"cannot {action} {uri}: {type(exc).__name__}: {exc}")


def read_bytes(uri: str, limit: int | None = None) -> bytes:
    """The content of one object (at most ``limit`` + 1 bytes when a limit is given)."""
    try:
        with filesystem().open(uri, "rb") as fh:
            data: bytes = fh.read() if limit is None else fh.read(limit + 1)
            return data
    except FileNotFoundError:
        raise
    except StoreError:
        raise
    # botocore's connection and credential errors are not OSErrors; one type for callers.
    except Exception as exc:
        raise _fail("read", uri, exc) from exc


def put_file(local: str | os.PathLike[str], uri: str) -> None:
    """Upload one file (a single PUT: atomic, readers see the old or the new object)."""
    try:
        filesystem().put_file(str(local), uri)
    except StoreError:
        raise
    except Exception as exc:
        raise _fail("write", uri, exc) from exc


def read_manifest(prefix: str) -> dict[str, Any] | None:
    """The committed manifest of an artifact set, or None when it is not committed."""
    uri = join(prefix, contract.MANIFEST_FILE)
    try:
        raw = read_bytes(uri)
    except FileNotFoundError:
        return None
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise artifacts.ArtifactError(f"{uri}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise artifacts.ArtifactError(f"{uri}: manifest has no 'files' map")
    return manifest


def upload_set(local_dir: Path, prefix: str) -> None:
    """Upload a sealed artifact set: every file it lists, then manifest.json last."""
    manifest = artifacts.read_manifest(local_dir)
    for name in sorted(manifest["files"]):
        artifacts.check_file_name(local_dir, name)
        put_file(local_dir / name, join(prefix, name))
    # The commit: until this PUT lands, readers find no version under the prefix.
    put_file(local_dir / contract.MANIFEST_FILE, join(prefix, contract.MANIFEST_FILE))
    log.info("uploaded %d file(s) and the manifest to %s", len(manifest["files"]), prefix)


def download_set(prefix: str, dest: Path) -> Path:
    """Fetch a committed artifact set into the new directory ``dest``; return it.

    Only the files the manifest lists are fetched.  The caller verifies them
    (artifacts.verify) before using anything.
    """
    manifest = read_manifest(prefix)
    if manifest is None:
        raise artifacts.ArtifactError(
            f"{prefix}: no {contract.MANIFEST_FILE} (the version was never committed)"
        )
    dest.mkdir(parents=True)
    fs = filesystem()
    for name in manifest["files"]:
        artifacts.check_file_name(prefix, name)
        uri = join(prefix, name)
        try:
            fs.get_file(uri, str(dest / name))
        except FileNotFoundError as exc:
            raise artifacts.ArtifactError(f"{uri}: listed in the manifest but missing") from exc
        except Exception as exc:
            raise _fail("read", uri, exc) from exc
    artifacts.write_json(dest / contract.MANIFEST_FILE, manifest)
    return dest
