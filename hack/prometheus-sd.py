#!/usr/bin/env python3
"""Pod discovery for Prometheus' file_sd_configs (Debian's build has no kubernetes_sd).

    prometheus-sd.py KUBECTL KUBECONFIG TARGETS_JSON

Every 2 seconds: list running pods annotated ``prometheus.io/scrape: "true"``
and write them, with ``namespace`` / ``pod`` labels and the annotated port and
path, to TARGETS_JSON (atomically, so Prometheus never reads half a file).
Standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def targets(kubectl: str, kubeconfig: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, "get", "pods", "-A", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout
    groups = []
    for pod in json.loads(out)["items"]:
        meta, status = pod["metadata"], pod.get("status") or {}
        notes = meta.get("annotations") or {}
        if notes.get("prometheus.io/scrape") != "true" or status.get("phase") != "Running":
            continue
        if not status.get("podIP") or meta.get("deletionTimestamp"):
            continue
        port = notes.get("prometheus.io/port", "80")
        groups.append(
            {
                "targets": [f"{status['podIP']}:{port}"],
                "labels": {
                    "namespace": meta["namespace"],
                    "pod": meta["name"],
                    "__metrics_path__": notes.get("prometheus.io/path", "/metrics"),
                },
            }
        )
    return groups


def main() -> None:
    kubectl, kubeconfig, path = sys.argv[1:4]
    while True:
        try:
            text = json.dumps(targets(kubectl, kubeconfig), indent=1)
            with open(path + ".tmp", "w") as handle:
                handle.write(text)
            os.replace(path + ".tmp", path)
        except (subprocess.SubprocessError, ValueError, OSError) as error:
            print(f"discovery failed: {error}", file=sys.stderr, flush=True)
        time.sleep(2)


if __name__ == "__main__":
    main()
