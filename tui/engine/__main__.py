"""`python -m tui.engine`: the engine process (see `tui.engine.main`)."""

import os
import sys

# numpy's BLAS threads and TensorFlow's fight over two cores: a PCA of the test set took 100
# times longer beside a training round (tests/benchmarks/bench_inspection.py). Before numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from tui.engine.main import main

sys.exit(main(sys.argv[1:]))
