"""``python -m driftloop.cli``: the same as ``kubectl driftloop``."""

import sys

from driftloop.cli.main import main

sys.exit(main())
