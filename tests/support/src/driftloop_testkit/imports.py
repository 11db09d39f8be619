"""What a fresh interpreter loads when it imports some modules (layering checks)."""

from __future__ import annotations

import subprocess
import sys


def loaded_packages(*modules: str, timeout: float = 120) -> set[str]:
    """The top-level packages in ``sys.modules`` after importing ``modules`` afresh."""
    code = (
        f"import sys, {', '.join(modules)}; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=timeout
    ).stdout
    return set(out.split())
