"""`python -m tui`: the same command line as the `mnist-tui` script."""

from __future__ import annotations

import sys

from tui.cli import main

sys.exit(main())
