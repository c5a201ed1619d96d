"""What a sweep costs beyond training, and what a sweep finds against the `fast` preset.

Run from the project root (it prints figures; nothing is asserted here):

    .venv/bin/python tests/benchmarks/bench_sweep.py
    .venv/bin/python tests/benchmarks/bench_sweep.py --train-size 12000 --trials 4  # reduced

Part 1, the overhead: one `mnist-tui sweep --preset fast` process of `--trials` 2-epoch trials.
Each trial's wall time (Optuna's start to end) is split into its epochs' training time (the
run's metrics) and the rest: building the model, evaluating and predicting the test set, saving,
the study's reads and writes and the pruning checks. The process's start (Python, TensorFlow,
the data) is paid once per sweep process, and is shown against one trial too. The study's own
calls are also timed alone, on a journal file holding as many trials as the sweep.

Part 2, the search: the best trial of that sweep (over learning rate, batch size and filters,
validation held out so that trials are judged on images they do not train on) against one
`mnist-tui train --preset fast`: test accuracy and wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from tui.core.experiments.study import SweepFolder
from tui.core.runs.layout import HPARAMS_TOML, read_history
from tui.core.settings.toml import load_toml

ROOT = Path(__file__).resolve().parents[2]
SPACE = """\
learning_rate = {low = 0.002, high = 0.03, log = true}
batch_size = [128, 256, 512]
conv_filters = [[16, 32, 64], [24, 48, 96], [32, 64, 128]]
validation_split = 0.1
"""
ACCURACY = re.compile(r"Test accuracy: (\d+\.\d\d)%")


def _run(argv: list[str], folder: Path) -> tuple[float, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", XDG_CACHE_HOME=str(folder / "cache"))
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, cwd=folder)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def study_calls(trials: int, epochs: int, folder: Path) -> float:
    """Seconds the study's calls take for one trial (ask, a report and a pruning check per
    epoch, tell), on a journal file already holding `trials` trials."""
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "calls.journal")))
    study = optuna.create_study(
        storage=storage, direction="maximize", pruner=optuna.pruners.MedianPruner(2, 0)
    )
    times = []
    for number in range(trials):
        started = time.perf_counter()
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True)
        for epoch in range(1, epochs + 1):
            trial.report(0.9 + number / 1000, epoch)
            trial.should_prune()
        study.tell(trial, 0.9 + number / 1000)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--train-size", type=int, default=0, help="0: all 60,000 images")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="mnist-tui-sweep-bench-"))
    (folder / "space.toml").write_text(SPACE, encoding="utf-8")
    common = ["--preset", "fast", "--data", args.data, "--train-size", str(args.train_size)]

    sweep_seconds, out = _run(
        [sys.executable, "-m", "tui", "sweep", *common, "--space", "space.toml", "--trials",
         str(args.trials), "--out", "sw"],
        folder,
    )  # fmt: skip
    sweep = SweepFolder.open(folder / "sw")
    trials = sweep.study(0).get_trials(deepcopy=False)
    walls, fits = [], []
    for trial in trials:
        if trial.datetime_start is None or trial.datetime_complete is None:
            continue
        run = Path(trial.user_attrs["run"])
        history = read_history(run, load_toml(run / HPARAMS_TOML), {})
        walls.append((trial.datetime_complete - trial.datetime_start).total_seconds())
        fits.append(sum(event.seconds or 0.0 for event in history))
    wall, fit = statistics.median(walls), statistics.median(fits)
    # Outside the trials: Python, TensorFlow and the data at the start, the table at the end.
    start_up = sweep_seconds - sum(walls)
    calls = study_calls(len(trials), 2, folder)

    print(f"sweep of {len(trials)} trials, fast preset, train size {args.train_size or 60000}")
    print(f"  trial wall time, median           {wall:8.2f} s")
    print(f"  of which training (epochs)        {fit:8.2f} s")
    print(f"  the rest of a trial               {wall - fit:8.2f} s  ({(wall - fit) / wall:.1%})")
    print(f"  study calls alone (journal)       {calls * 1000:8.1f} ms ({calls / wall:.2%})")
    print(
        f"  outside the trials, per process   {start_up:8.2f} s  ({start_up / wall:.1%} of a trial)"
    )
    print(f"  whole sweep                       {sweep_seconds:8.2f} s")

    best = re.search(r"^Best: trial (\d+), (\S+) (\d\.\d+) \((.*)\)$", out, re.MULTILINE)
    best_run = re.search(r"^Its run: (.+)$", out, re.MULTILINE)
    if best is not None and best_run is not None:
        evaluation = json.loads((Path(best_run[1]) / "evaluation.json").read_text())
        print(f"best trial {best[1]}: {best[2]} {best[3]}, test {evaluation['accuracy']:.2%}")
        print(f"  settings: {best[4]}")
    train_seconds, out = _run(
        [sys.executable, "-m", "tui", "train", *common, "--out", "fast.keras"], folder
    )
    found = ACCURACY.search(out)
    print(f"fast preset alone: test {found[1] if found else '?'}%, {train_seconds:.1f} s wall")
    print(f"the sweep took {sweep_seconds / train_seconds:.1f} times as long")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
