"""`python -m tui.engine`: the engine process (see `tui.engine.main`)."""

import sys

from tui.engine.main import main

sys.exit(main(sys.argv[1:]))
