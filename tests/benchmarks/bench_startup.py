"""Start-up figures: process start to the app's first frame, and to "ready" (the engine has
TensorFlow and the data).

Run from the project root; it starts `mnist-tui` on a pseudo-terminal several times and prints
medians:

    .venv/bin/python tests/benchmarks/bench_startup.py --data ../shared/data/mnist.npz
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")


def one_start(data: str, first_marker: bytes, ready_marker: bytes) -> tuple[float, float]:
    """Seconds from spawning the process to the first frame and to the ready state."""
    leader, follower = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "tui", "--data", data],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(follower)
    seen = b""
    first = ready = float("nan")
    deadline = start + 120
    try:
        while time.perf_counter() < deadline and ready != ready:
            readable, _, _ = select.select([leader], [], [], 0.5)
            if not readable:
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            seen += ANSI.sub(b"", chunk)
            now = time.perf_counter() - start
            if first != first and first_marker in seen:
                first = now
            if ready_marker in seen:
                ready = now
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        os.close(leader)
        # The engine has a session of its own; end it too, so the next start is measured alone.
        from tui.core.runs.lock import pid_alive
        from tui.engine import registry

        for engine in registry.live_engines():
            os.kill(engine.pid, signal.SIGTERM)
            while pid_alive(engine.pid):
                time.sleep(0.05)
    return first, ready


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--first", default="learning rate", help="text on the first frame")
    parser.add_argument("--ready", default="Ready: press t", help="text once TF and data are in")
    args = parser.parse_args(argv)
    state = tempfile.mkdtemp(prefix="mnist-tui-bench-engines-")
    os.chmod(state, 0o700)
    os.environ["MNIST_TUI_STATE_DIR"] = state
    sys.path.insert(0, str(ROOT))
    firsts, readies = [], []
    for run in range(args.runs):
        first, ready = one_start(args.data, args.first.encode(), args.ready.encode())
        firsts.append(first)
        readies.append(ready)
        print(f"start {run + 1}: first frame {first:.3f} s, ready {ready:.3f} s")
    print()
    print(f"{'figure':28} {'median':>8} {'worst':>8}")
    rows = (("process start → first frame", firsts), ("process start → ready", readies))
    for label, values in rows:
        print(f"{label:28} {statistics.median(values):>7.3f}s {max(values):>7.3f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
