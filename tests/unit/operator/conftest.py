from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

GOLDEN = Path(__file__).parent / "golden"


class Golden:
    """Compare a manifest with golden YAML; DRIFTLOOP_UPDATE_GOLDEN=1 rewrites it."""

    def check(self, name: str, manifest: Any) -> None:
        path = GOLDEN / f"{name}.yaml"
        text = yaml.safe_dump(manifest, sort_keys=False, width=100)
        if os.environ.get("DRIFTLOOP_UPDATE_GOLDEN") == "1":
            path.write_text(text)
        assert path.exists(), f"{path} missing; DRIFTLOOP_UPDATE_GOLDEN=1 to create it"
        assert text == path.read_text(), f"{path} differs; DRIFTLOOP_UPDATE_GOLDEN=1 to accept"


@pytest.fixture
def golden() -> Golden:
    return Golden()
