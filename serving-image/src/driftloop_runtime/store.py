"""``s3://`` artifact stores through obstore (Python bindings of Rust's object_store).

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
(and AWS_SESSION_TOKEN, AWS_REGION..., read by object_store itself) and
AWS_ENDPOINT_URL for an S3-compatible server, which is passed explicitly with
path-style addressing (MinIO and most self-hosted servers do not serve
virtual-host-style bucket names); an ``http://`` endpoint is allowed (object_store
refuses plain HTTP unless told).  Without AWS_REGION / AWS_DEFAULT_REGION the region
is taken from an AWS endpoint's host name (``https://s3.<region>.amazonaws.com``),
since object_store signs for us-east-1 otherwise and does not follow S3's region
redirects as botocore does.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import driftloop_contract as contract
from driftloop_runtime import artifacts

if TYPE_CHECKING:
    from obstore.store import ClientConfig, S3Config, S3Store

log = logging.getLogger(__name__)

#: The region in an AWS S3 endpoint host: s3.<region>.amazonaws.com, s3-<region>...,
#: s3.dualstack.<region>...
_AWS_HOST_REGION = re.compile(r"s3[.-](?:dualstack\.)?([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")
#: Error text kept in a StoreError (results go into a 4 KiB termination message).
_DETAIL_LIMIT = 600


class StoreError(OSError):
    """The object store could not be reached or refused a request.

    An OSError, so callers treat it like any other I/O failure (transient: a Job retries,
    a server refuses to start and the previous version keeps serving).
    """


def is_remote(uri: str) -> bool:
    return uri.startswith(contract.S3_SCHEME)


def join(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/{name}"


def split(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ("bucket", "some/key")."""
    bucket, _, key = uri.removeprefix(contract.S3_SCHEME).partition("/")
    if not bucket:
        raise StoreError(f"{uri}: no bucket name")
    return bucket, key.strip("/")


def endpoint_region(endpoint: str) -> str | None:
    """The region named by an AWS S3 endpoint URL, or None (other servers, global host)."""
    host = urllib.parse.urlsplit(endpoint).hostname or ""
    match = _AWS_HOST_REGION.fullmatch(host)
    return match.group(1) if match else None


def client(bucket: str) -> S3Store:
    """An S3 client for ``bucket``, configured from the environment (cached per setting)."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    return _client(bucket, env)


@functools.lru_cache(maxsize=16)
def _client(bucket: str, env: tuple[tuple[str, str], ...]) -> S3Store:
    # ``env`` is only the cache key: object_store reads the AWS_* variables itself.
    try:
        from obstore.store import S3Store
    except ImportError as exc:  # the image always has it; a bare install may not
        raise StoreError(f"s3:// needs the obstore package: {exc}") from exc
    config: S3Config = {}
    client_options: ClientConfig = {}
    endpoint = (os.environ.get(contract.ENV_S3_ENDPOINT) or "").rstrip("/")
    if endpoint:
        config["endpoint"] = endpoint
        config["virtual_hosted_style_request"] = False
        client_options["allow_http"] = endpoint.startswith("http://")
        region = endpoint_region(endpoint)
        if region and not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
            config["region"] = region
    try:
        return S3Store(bucket, config=config, client_options=client_options)
    except Exception as exc:  # a malformed variable (e.g. the endpoint URL)
        raise _fail("configure a client for", f"{contract.S3_SCHEME}{bucket}", exc) from exc


def _fail(action: str, uri: str, exc: Exception) -> StoreError:
    # object_store appends a multi-line "Debug source" dump; the first part says it all.
    detail = " ".join(str(exc).split("\n\nDebug source", 1)[0].split())
    if len(detail) > _DETAIL_LIMIT:
        detail = detail[:_DETAIL_LIMIT] + "..."
    return StoreError(f"cannot {action} {uri}: {type(exc).__name__}: {detail}")


def read_bytes(uri: str, limit: int | None = None) -> bytes:
    """The content of one object (at most ``limit`` + 1 bytes when a limit is given)."""
    bucket, key = split(uri)
    try:
        s3 = client(bucket)  # first: StoreError if obstore is not installed
        import obstore

        result = obstore.get(s3, key)
        if limit is None or result.meta["size"] <= limit:
            return bytes(result.bytes())
        # Larger than allowed: read just past the limit (the caller reports the size).
        chunks: list[bytes] = []
        total = 0
        for chunk in result.stream():
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                break
        return b"".join(chunks)[: limit + 1]
    except FileNotFoundError:
        raise
    except StoreError:
        raise
    # object_store's connection and credential errors are not OSErrors; one type for callers.
    except Exception as exc:
        raise _fail("read", uri, exc) from exc


def put_file(local: str | os.PathLike[str], uri: str) -> None:
    """Upload one file (a single PUT: atomic, readers see the old or the new object).

    Large files go up as a multipart upload, which is atomic too: the object appears
    when the upload completes.
    """
    bucket, key = split(uri)
    try:
        s3 = client(bucket)
        import obstore

        obstore.put(s3, key, Path(local))
    except StoreError:
        raise
    except Exception as exc:
        raise _fail("write", uri, exc) from exc


def _get_file(uri: str, dest: Path) -> None:
    bucket, key = split(uri)
    s3 = client(bucket)
    import obstore

    result = obstore.get(s3, key)
    with open(dest, "wb") as fh:
        for chunk in result.stream():
            fh.write(chunk)


def listdir(prefix: str) -> list[str]:
    """Names directly under ``prefix``: objects and "subdirectories" (common prefixes)."""
    bucket, key = split(prefix)
    try:
        s3 = client(bucket)
        import obstore

        found = obstore.list_with_delimiter(s3, prefix=key or None)
    except StoreError:
        raise
    except Exception as exc:
        raise _fail("list", prefix, exc) from exc
    paths = [obj["path"] for obj in found["objects"]] + list(found["common_prefixes"])
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in paths)


def delete_tree(prefix: str) -> int:
    """Delete every object under ``prefix`` (a "directory"); return how many went."""
    bucket, key = split(prefix)
    try:
        s3 = client(bucket)
        import obstore

        paths = [obj["path"] for batch in obstore.list(s3, prefix=key) for obj in batch]
        if paths:
            obstore.delete(s3, paths)
    except StoreError:
        raise
    except Exception as exc:
        raise _fail("delete", prefix, exc) from exc
    return len(paths)


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
    for name in manifest["files"]:
        artifacts.check_file_name(prefix, name)
        uri = join(prefix, name)
        try:
            _get_file(uri, dest / name)
        except FileNotFoundError as exc:
            raise artifacts.ArtifactError(f"{uri}: listed in the manifest but missing") from exc
        except StoreError:
            raise
        except Exception as exc:
            raise _fail("read", uri, exc) from exc
    artifacts.write_json(dest / contract.MANIFEST_FILE, manifest)
    return dest
