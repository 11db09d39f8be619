"""Content-addressed dataset snapshots: the exact bytes a profile Job validated.

A source is one file, or a *prefix*: a local directory, or an ``s3://`` URI ending in
``/``, holding Parquet files (hive partitions such as ``day=2024-01-01/part-0.parquet``
welcome).  Its digest:

* one file: ``sha256:`` + sha256 of its bytes (= ``sha256sum file``);
* a prefix: ``sha256:`` + sha256 of the ``sha256sum``-style listing of its files,
  ``"<hex>  <relative path>\\n"`` sorted by path (= ``sha256sum`` of the output of
  ``cd dir && find . -name '*.parquet' | sort | sed 's|^./||' | xargs sha256sum``).

The profile Job copies the source once, hashing as it streams (memory does not grow
with the file), into a staging directory; validates and profiles that copy; and only
then publishes it to ``<root>/sha256/<hex>/`` (contract.snapshot_location): a rename
on the volume, or on S3 every file then ``manifest.json`` last (the commit marker).
Same content, same place: a second Dataset with equal bytes finds the snapshot
committed and reuses it.  A training Job reads the snapshot back and checks every
file's sha256 and the digest before it uses a byte (``SnapshotCorrupt``,
``SnapshotMissing`` otherwise).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import driftloop_contract as contract
from driftloop_contract import SnapshotRef, ValidationRule
from driftloop_runtime import artifacts, store
from driftloop_runtime.errors import RuntimeFailureError, ValidationFailedError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
HTTP_TIMEOUT_S = 60.0
PARQUET_SUFFIXES = (".parquet", ".pq")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.=\-]")


@dataclass
class Staged:
    """A local copy of a source (or of a snapshot), its files checked against their hashes."""

    #: Holds the files at ``data/<relative path>``.
    directory: Path
    #: relative path -> sha256 hex.
    files: dict[str, str]
    digest: str
    #: True for a prefix source (Parquet files), False for one file.
    prefix: bool
    source: str

    @property
    def data_dir(self) -> Path:
        return self.directory / contract.SNAPSHOT_DATA_DIR

    def paths(self) -> list[Path]:
        return [self.data_dir / rel for rel in sorted(self.files)]


def is_prefix(uri: str) -> bool:
    """A directory or ``s3://.../`` prefix (http(s) sources are always one file)."""
    if uri.startswith(("http://", "https://")):
        return False
    if store.is_remote(uri):
        return uri.endswith("/")
    path = _local_path(uri)
    return path is not None and (uri.endswith("/") or os.path.isdir(path))


def digest_of(files: dict[str, str], prefix: bool) -> str:
    if not prefix:
        (only,) = files.values()
        return contract.DIGEST_PREFIX + only
    listing = "".join(f"{files[rel]}  {rel}\n" for rel in sorted(files))
    return contract.DIGEST_PREFIX + hashlib.sha256(listing.encode()).hexdigest()


def _local_path(uri: str) -> str | None:
    if uri.startswith("file://"):
        return urllib.parse.unquote(urllib.parse.urlparse(uri).path)
    return uri if uri.startswith("/") else None


def _checked_relpath(rel: str, where: str) -> str:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise RuntimeFailureError(contract.REASON_INVALID_REQUEST, f"{where}: bad path {rel!r}")
    return rel


def _is_data_file(rel: str) -> bool:
    # Spark/Hive markers (_SUCCESS, _metadata) and hidden files (.crc) are not data.
    name = rel.rsplit("/", 1)[-1]
    return not name.startswith((".", "_")) and name.lower().endswith(PARQUET_SUFFIXES)


def list_source(uri: str) -> list[tuple[str, str]]:
    """[(relative path, URI)] of the files of a source: itself, or a prefix's Parquet files."""
    if not is_prefix(uri):
        base = urllib.parse.urlparse(uri).path.rsplit("/", 1)[-1] if "://" in uri else uri
        name = _SAFE_NAME.sub("_", base.rsplit("/", 1)[-1]).lstrip("._") or "source"
        return [(name, uri)]
    found: list[tuple[str, str]] = []
    if store.is_remote(uri):
        bucket, key = store.split(uri)
        base_key = f"{key}/" if key else ""
        try:
            import obstore

            for batch in obstore.list(store.client(bucket), prefix=base_key or None):
                for meta in batch:
                    rel = str(meta["path"])[len(base_key) :]
                    if _is_data_file(rel):
                        found.append((rel, f"{contract.S3_SCHEME}{bucket}/{meta['path']}"))
        except store.StoreError:
            raise
        except Exception as exc:  # connection and credential errors of object_store
            raise store.StoreError(f"cannot list {uri}: {type(exc).__name__}: {exc}") from exc
    else:
        root = _local_path(uri) or uri
        if not os.path.isdir(root):
            raise RuntimeFailureError(
                contract.REASON_DATA_UNAVAILABLE,
                f"{uri}: no such directory",
                exit_code=contract.EXIT_ERROR,
            )
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
            for filename in filenames:
                rel = os.path.relpath(os.path.join(dirpath, filename), root).replace(os.sep, "/")
                if _is_data_file(rel):
                    found.append((rel, os.path.join(dirpath, filename)))
    if not found:
        raise ValidationFailedError(
            ValidationRule.no_files,
            f"the prefix {uri} holds no Parquet file (*.parquet, *.pq; hidden and _ files "
            "are skipped)",
        )
    return sorted(found)


def _chunks(uri: str) -> Iterator[bytes]:
    """The bytes of one file, streamed."""
    path = _local_path(uri)
    if path is not None:
        with open(path, "rb") as fh:
            while block := fh.read(CHUNK):
                yield block
    elif uri.startswith(("http://", "https://")):
        req = urllib.request.Request(uri, headers={"User-Agent": "driftloop-runtime"})
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
            while block := resp.read(CHUNK):
                yield block
    elif store.is_remote(uri):
        bucket, key = store.split(uri)
        try:
            import obstore

            for block in obstore.get(store.client(bucket), key).stream():
                yield bytes(block)
        except (FileNotFoundError, store.StoreError):
            raise
        except Exception as exc:  # object_store's errors are not OSErrors
            raise store.StoreError(f"cannot read {uri}: {type(exc).__name__}: {exc}") from exc
    else:
        raise RuntimeFailureError(
            contract.REASON_INVALID_REQUEST, f"unsupported source URI scheme: {uri}"
        )


def copy_hashed(uri: str, dest: Path, limit: int | None = None) -> tuple[str, int]:
    """Copy one file to ``dest``, streaming; return (sha256 hex, bytes)."""
    h = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        for block in _chunks(uri):
            h.update(block)
            out.write(block)
            size += len(block)
            if limit is not None and size > limit:
                raise RuntimeFailureError(
                    contract.REASON_DATA_UNAVAILABLE, f"{uri}: larger than {limit} bytes"
                )
    return h.hexdigest(), size


def stage(uri: str, directory: Path, limit: int | None = None) -> Staged:
    """Copy a source into ``directory``/data, hashing every file on the way."""
    files: dict[str, str] = {}
    total = 0
    try:
        for rel, file_uri in list_source(uri):
            rel = _checked_relpath(rel, uri)
            left = None if limit is None else limit - total
            files[rel], size = copy_hashed(
                file_uri, directory / contract.SNAPSHOT_DATA_DIR / rel, left
            )
            total += size
    except RuntimeFailureError:
        raise
    except (OSError, ValueError) as exc:  # StoreError too: the source's store is down
        raise RuntimeFailureError(
            contract.REASON_DATA_UNAVAILABLE,
            f"cannot read {uri}: {exc}",
            exit_code=contract.EXIT_ERROR,
        ) from exc
    prefix = is_prefix(uri)
    log.info("read %s: %d file(s), %d bytes", uri, len(files), total)
    return Staged(directory, files, digest_of(files, prefix), prefix, uri)


def staging_dir(snapshot_root: str | None, scratch: str) -> Path:
    """Where to stage a source: beside the snapshots on a volume (one rename publishes
    it), else local scratch (uploaded from there)."""
    if snapshot_root and not store.is_remote(snapshot_root):
        base = Path(_local_path(snapshot_root) or snapshot_root)
    else:
        base = Path(scratch)
    base.mkdir(parents=True, exist_ok=True)
    path = base / f".staging-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    return path


def _manifest(staged: Staged, fmt: str) -> dict[str, Any]:
    return {
        "digest": staged.digest,
        "format": fmt,
        "prefix": staged.prefix,
        "source": staged.source,
        "files": dict(sorted(staged.files.items())),
    }


def location(snapshot_root: str, digest: str) -> str:
    return f"{snapshot_root.rstrip('/')}/sha256/{digest.removeprefix(contract.DIGEST_PREFIX)}"


def publish(staged: Staged, snapshot_root: str, fmt: str) -> str:
    """Store a validated staged copy under its digest, once; return the snapshot's URI.

    Consumes ``staged.directory`` (renamed into place, or discarded when the snapshot
    is already there).
    """
    final = location(snapshot_root, staged.digest)
    manifest = _manifest(staged, fmt)
    if store.is_remote(final):
        try:
            if store.read_manifest(final) is None:
                for rel in sorted(staged.files):
                    store.put_file(staged.data_dir / rel, store.join(final, f"data/{rel}"))
                artifacts.write_json(staged.directory / contract.MANIFEST_FILE, manifest)
                # The commit: a prefix without its manifest holds no snapshot.
                store.put_file(
                    staged.directory / contract.MANIFEST_FILE,
                    store.join(final, contract.MANIFEST_FILE),
                )
                log.info("stored snapshot %s", final)
            else:
                log.info("snapshot %s already stored: reused", final)
        finally:
            shutil.rmtree(staged.directory, ignore_errors=True)
        return final
    target = Path(_local_path(final) or final)
    if (target / contract.MANIFEST_FILE).exists():
        log.info("snapshot %s already stored: reused", final)
        shutil.rmtree(staged.directory, ignore_errors=True)
        return "file://" + str(target)
    artifacts.write_json(staged.directory / contract.MANIFEST_FILE, manifest)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staged.directory, target)
        log.info("stored snapshot %s", target)
    except OSError:
        if not (target / contract.MANIFEST_FILE).exists():
            shutil.rmtree(staged.directory, ignore_errors=True)
            raise
        shutil.rmtree(staged.directory, ignore_errors=True)  # another Job stored it first
    return "file://" + str(target)


def _corrupt(ref: SnapshotRef, detail: str) -> RuntimeFailureError:
    return RuntimeFailureError(
        contract.REASON_SNAPSHOT_CORRUPT,
        f"snapshot {ref.digest} at {ref.uri} fails its digest check: {detail}; nothing was "
        "trained on it",
    )


def _read_manifest(ref: SnapshotRef) -> dict[str, Any]:
    missing = RuntimeFailureError(
        contract.REASON_SNAPSHOT_MISSING,
        f"no snapshot of {ref.digest} at {ref.uri}: that version was never validated here, "
        "or was removed from the store",
    )
    try:
        if store.is_remote(ref.uri):
            manifest = store.read_manifest(ref.uri)
            if manifest is None:
                raise missing
        else:
            path = Path(_local_path(ref.uri) or ref.uri) / contract.MANIFEST_FILE
            if not path.exists():
                raise missing
            manifest = json.loads(path.read_text(encoding="utf-8"))
    except artifacts.ArtifactError as exc:
        raise _corrupt(ref, str(exc)) from exc
    except ValueError as exc:
        raise _corrupt(ref, f"unreadable manifest: {exc}") from exc
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise _corrupt(ref, "the manifest lists no files")
    return manifest


def fetch(ref: SnapshotRef, scratch: str) -> tuple[Staged, str]:
    """The verified files of a snapshot, and its format.

    On a volume the files are checked in place; from S3 they are streamed into
    ``scratch`` and hashed on the way.  Every file must match the manifest, and the
    manifest the digest asked for.
    """
    manifest = _read_manifest(ref)
    files: dict[str, str] = {str(k): str(v) for k, v in manifest["files"].items()}
    prefix = bool(manifest.get("prefix"))
    try:
        if digest_of(files, prefix) != ref.digest:
            raise _corrupt(ref, f"its manifest describes {digest_of(files, prefix)}")
    except ValueError as exc:  # a single-file manifest listing several files
        raise _corrupt(ref, f"malformed manifest: {exc}") from exc
    if store.is_remote(ref.uri):
        directory = Path(scratch) / f"snapshot-{uuid.uuid4().hex[:12]}"
        for rel, want in sorted(files.items()):
            _checked_relpath(rel, ref.uri)
            try:
                got, _ = copy_hashed(
                    store.join(ref.uri, f"data/{rel}"), directory / contract.SNAPSHOT_DATA_DIR / rel
                )
            except FileNotFoundError as exc:
                raise _corrupt(ref, f"{rel} is listed but missing") from exc
            if got != want:
                raise _corrupt(ref, f"{rel} has sha256 {got}, the manifest says {want}")
    else:
        directory = Path(_local_path(ref.uri) or ref.uri)
        for rel, want in sorted(files.items()):
            _checked_relpath(rel, ref.uri)
            try:
                got = artifacts.sha256_file(directory / contract.SNAPSHOT_DATA_DIR / rel)
            except OSError as exc:
                raise _corrupt(ref, f"{rel}: {exc}") from exc
            if got != want:
                raise _corrupt(ref, f"{rel} has sha256 {got}, the manifest says {want}")
    staged = Staged(directory, files, ref.digest, prefix, str(manifest.get("source", ref.uri)))
    return staged, str(manifest.get("format") or "auto")
