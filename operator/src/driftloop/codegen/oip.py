"""The runtime's gRPC code, generated from its Open Inference Protocol proto by protoc
(grpcio-tools, a dev dependency): ``driftloop_runtime/oip/open_inference_pb2{,_grpc}.py``
and the ``.pyi`` stubs."""

from __future__ import annotations

import tempfile
from pathlib import Path

SRC = Path("serving-image/src")
PROTO = Path("driftloop_runtime/oip/open_inference.proto")
GENERATED = ("open_inference_pb2.py", "open_inference_pb2.pyi", "open_inference_pb2_grpc.py")


def outputs(root: Path) -> dict[Path, str]:
    from grpc_tools import protoc

    src = root / SRC
    with tempfile.TemporaryDirectory() as out:
        code = protoc.main(
            [
                "protoc",
                f"-I{src}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                str(src / PROTO),
            ]
        )
        if code != 0:
            raise RuntimeError(f"protoc failed on {PROTO} ({code})")
        return {
            src / PROTO.parent / name: (Path(out) / PROTO.parent / name).read_text()
            for name in GENERATED
        }
