"""`mnist-tui sweep`: its flags, and the namespace they give turned into a request.

Apart from `tui.cli` so that the sweep's many flags do not crowd the other commands; Optuna is
imported only when a sweep is really asked for.
"""

from __future__ import annotations

import argparse
from typing import Any

from tui.core.settings.hyperparams import SETTINGS
from tui.core.settings.requests import Setup
from tui.errors import UsageError
from tui.flags import add_hyperparam_flags, add_setup_flags, flag


def add_sweep_command(commands: Any) -> None:
    """`mnist-tui sweep` and its flags, under the subcommands `commands`."""
    sweep = commands.add_parser(
        "sweep", help="search for the best settings: many runs, chosen by Optuna"
    )
    add_setup_flags(sweep)
    group = sweep.add_argument_group("sweep", "what to search and for how long")
    flag(
        group,
        "--space",
        metavar="FILE.toml",
        help="the settings to vary: `name = [a, b]` choices, `name = {low = 1e-4, high = 1e-2, "
        "log = true}` a range, `name = value` fixed (default: learning rate, batch size and "
        "dropout around the preset)",
    )
    flag(group, "--trials", type=int, metavar="N", help="trials to finish (default: 10)")
    flag(group, "--timeout", type=float, metavar="SECONDS", help="start no trial after this")
    flag(
        group,
        "--trial-budget",
        type=float,
        metavar="SECONDS",
        help="stop each trial after this much training; it scores the accuracy reached by then",
    )
    flag(
        group,
        "--workers",
        type=int,
        metavar="N",
        help="run N trial processes on this machine, sharing the study (default: 1)",
    )
    flag(
        group,
        "--storage",
        metavar="URL",
        help="a database Optuna's RDB storage takes (sqlite:///file.db, postgresql://...), so "
        "that several machines share one study (default: a journal file in the sweep's folder)",
    )
    flag(group, "--study", metavar="NAME", help="the study's name in --storage")
    flag(group, "--out", metavar="DIR", help="the sweep's folder (default: sweeps/<time>-<preset>)")
    flag(group, "--resume", metavar="SWEEP_DIR", help="carry on an interrupted sweep")
    flag(
        group,
        "--detach",
        action="store_true",
        help="run in the background and return at once; `mnist-tui attach SWEEP_DIR` watches it",
    )
    flag(
        group,
        "--save-config",
        metavar="FILE.toml",
        help="write the best trial's settings, for --config",
    )
    add_hyperparam_flags(sweep)


def sweep_request(args: argparse.Namespace, setup: Setup) -> Any:
    """The `SweepRequest` for `mnist-tui sweep`, over the `setup` its flags give; raises
    UsageError."""
    from tui.sweep import SweepRequest  # Optuna: for this command only

    for name in ("trials", "workers", "timeout", "trial_budget"):
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be above 0, not {value:g}.")
    resume = getattr(args, "resume", None)
    typed = tuple(name for name in SETTINGS if hasattr(args, name))
    if resume is not None:
        kept = ("config", "preset", "space", "storage", "study", "out", "trial_budget", "data")
        changed = [f"--{name.replace('_', '-')}" for name in (*typed, *kept) if hasattr(args, name)]
        if changed:
            raise UsageError(
                f"{', '.join(changed)} cannot change a sweep being resumed; only --trials, "
                "--timeout, --workers and --save-config can."
            )
    carried: list[str] = []
    for name in ("strategy", "devices"):
        if hasattr(args, name):
            carried += [f"--{name}", str(getattr(args, name))]
    for name in ("tensorboard", "mixed_precision"):
        if getattr(args, name, False):
            carried.append(f"--{name.replace('_', '-')}")
    return SweepRequest(
        setup=setup,
        space=getattr(args, "space", None),
        fixed=typed,
        trials=getattr(args, "trials", None),
        timeout=getattr(args, "timeout", None),
        trial_budget=getattr(args, "trial_budget", None),
        workers=getattr(args, "workers", 1),
        storage=getattr(args, "storage", None),
        study=getattr(args, "study", None),
        resume=resume,
        out=getattr(args, "out", None),
        save_config=getattr(args, "save_config", None),
        detach=getattr(args, "detach", False),
        carried=tuple(carried),
    )
