"""`python -m tui`: the same command line as the `mnist-tui` script."""

from __future__ import annotations

from tui.cli import entry

entry()
