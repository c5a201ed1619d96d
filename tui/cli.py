"""Command line: `mnist-tui` starts the app; `train`, `evaluate` and `predict` run headless."""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import itertools
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn, TextIO

from rich.console import Console

from tui.core import config
from tui.core.config import Hyperparams
from tui.core.distribute import (
    STRATEGIES,
    DistributeError,
    DistributeOptions,
    parse_devices,
)
from tui.core.runtime import (
    native_stderr_to,
    tensorflow_log_path,
)

PROG = "mnist-tui"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the person at the keyboard; str(err) is the sentence to show."""


# --- argument parsing -------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        say_error(f"{message} (see {self.prog} --help)")
        raise SystemExit(EXIT_BAD_INPUT)


def say_error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _field_docs() -> dict[str, str]:
    """The docstrings written under each Hyperparams field, for `--help`.

    They live in the source only (Python keeps no attribute docstrings), so read them from there
    instead of keeping a second copy of every description here.
    """
    try:
        tree = ast.parse(inspect.getsource(Hyperparams))
    except (OSError, TypeError, SyntaxError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _converter(name: str, kind: str) -> Callable[[str], Any]:
    """Parse a flag's text into the field's type, with a message naming the field on failure."""

    def whole(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} = {text!r} must be a whole number.") from None

    def number(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} = {text!r} must be a number.") from None

    def filters(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} = {text!r} must be whole numbers separated by commas, e.g. 32,64."
            ) from None

    if kind == "int":
        return whole
    if kind == "float":
        return number
    if kind.startswith("tuple"):
        return filters
    return str


_METAVARS = {"int": "N", "float": "X", "str": "TEXT"}


def _add_hyperparam_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Hyperparams field, generated so the field list lives only in the core.

    Flags default to "absent" (SUPPRESS) so that only what was typed overrides the config file
    and the preset. Range and choice checks are left to Hyperparams, whose sentences name the
    field, the value and what is allowed.
    """
    group = parser.add_argument_group(
        "hyperparameters", "each overrides --config, which overrides --preset"
    )
    docs = _field_docs()
    base = config.preset(config.DEFAULT_PRESET)
    for f in fields(Hyperparams):
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        default = getattr(base, f.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text = f"{docs.get(f.name, '')} (default: {shown})".strip()
        text = text.replace("%", "%%")  # argparse formats help with %
        if kind == "bool":
            group.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=text,
            )
            continue
        choices = config.CHOICES.get(f.name)
        metavar = "{" + ",".join(choices) + "}" if choices else _METAVARS.get(kind, "N,...")
        group.add_argument(
            flag,
            dest=f.name,
            type=_converter(f.name, kind),
            default=argparse.SUPPRESS,
            metavar=metavar,
            help=text,
        )


def _add_setup_flags(parser: argparse.ArgumentParser) -> None:
    """--preset, --config and --data, shared by the app and `train`."""
    parser.add_argument(
        "--preset",
        default=config.DEFAULT_PRESET,
        metavar="{" + ",".join(config.PRESETS) + "}",
        help="starting hyperparameters (default: %(default)s)",
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE.toml", help="hyperparameters from a TOML file"
    )
    _add_data_flag(parser)
    _add_distribute_flags(parser)


def _add_distribute_flags(parser: argparse.ArgumentParser) -> None:
    """--strategy, --devices and --mixed-precision: where training runs, not what it learns."""
    group = parser.add_argument_group("devices", "where training runs (not hyperparameters)")
    group.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="default: one device; mirrored: every local GPU (or two logical CPUs without one); "
        "multiworker: several processes described by $TF_CONFIG (default: %(default)s)",
    )
    group.add_argument(
        "--devices",
        metavar="LIST",
        help="for --strategy mirrored, the devices to use, e.g. gpu:0,gpu:1 or cpu:0,cpu:1",
    )
    group.add_argument(
        "--mixed-precision",
        action="store_true",
        help="compute in float16 with float32 weights and output (faster on recent GPUs)",
    )


def _add_data_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="mnist.npz or a folder of IDX files (default: $MNIST_TUI_DATA, the Keras cache, "
        "a download, then the bundled sample)",
    )


def _add_runs_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs-dir",
        type=Path,
        metavar="DIR",
        help="where run directories go (default: $MNIST_TUI_RUNS, else ./runs)",
    )


def _add_tensorboard_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard logs into the run directory's tensorboard/ folder "
        "(needs `pip install tensorboard`)",
    )


def _add_app_flags(parser: argparse.ArgumentParser) -> None:
    """--runs-dir, --tensorboard, --resume and --model: what the app opens and records."""
    _add_runs_dir_flag(parser)
    _add_tensorboard_flag(parser)
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="open a run directory: its curves, hyperparameters and model; t continues it",
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="PATH",
        help="open a saved .keras model to browse its predictions (v, c) and draw (d)",
    )


def _sort_order(text: str) -> Any:
    """--sort as a `PredictionSort`; imported here so that the app's start skips numpy."""
    from tui.core.predictions import PredictionSort

    try:
        return PredictionSort(text)
    except ValueError:
        orders = ", ".join(order.value for order in PredictionSort)
        raise argparse.ArgumentTypeError(f"{text!r} is not a sort order ({orders})") from None


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: the app's flags plus the train/evaluate/predict subcommands."""
    parser = _Parser(
        prog=PROG,
        description="Train a Keras CNN on MNIST and watch and steer it live in the terminal. "
        "Without a command, starts the app.",
    )
    _add_setup_flags(parser)
    _add_app_flags(parser)
    _add_hyperparam_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    train = commands.add_parser(
        "train", help="train headless with a progress bar and a metrics table"
    )
    _add_setup_flags(train)
    train.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where to save the model (default: ./models/<preset>-<timestamp>.keras); "
        "a path ending in .keras names the file itself",
    )
    train.add_argument(
        "--save-config", type=Path, metavar="FILE.toml", help="write the hyperparameters used"
    )
    _add_runs_dir_flag(train)
    _add_tensorboard_flag(train)
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue a run from its last completed epoch; --epochs sets a new target",
    )
    _add_hyperparam_flags(train)

    evaluate = commands.add_parser("evaluate", help="test loss and accuracy of a saved model")
    evaluate.add_argument("--model", type=Path, required=True, metavar="PATH")
    _add_data_flag(evaluate)

    predict = commands.add_parser("predict", help="show test digits with the model's guesses")
    predict.add_argument("--model", type=Path, required=True, metavar="PATH")
    _add_data_flag(predict)
    predict.add_argument(
        "--index", type=int, default=0, metavar="I", help="first test image (default: 0)"
    )
    predict.add_argument(
        "--count", type=int, default=8, metavar="N", help="how many digits (default: 8)"
    )
    predict.add_argument(
        "--misclassified", action="store_true", help="only digits the model got wrong"
    )
    predict.add_argument("--true", type=int, metavar="K", help="only digits of true class K")
    predict.add_argument("--pred", type=int, metavar="K", help="only digits predicted as K")
    predict.add_argument(
        "--sort",
        type=_sort_order,
        default="index",
        metavar="ORDER",
        help="index (default), confidence (least confident first) or loss (highest first)",
    )
    predict.add_argument("--compact", action="store_true", help="half-size digits")
    predict.add_argument("--no-color", action="store_true", help="plain characters, no colour")
    return parser


def resolve_hparams(args: argparse.Namespace) -> Hyperparams:
    """Preset, then the config file, then the flags typed; raises ValueError on bad values."""
    hparams = config.preset(args.preset)
    if args.config is not None:
        hparams = config.load_toml(args.config, base=hparams)
    typed = {f.name: getattr(args, f.name) for f in fields(Hyperparams) if hasattr(args, f.name)}
    return Hyperparams.from_dict(typed, base=hparams)


def distribute_options(args: argparse.Namespace) -> DistributeOptions:
    """The strategy flags, checked without importing TensorFlow; raises UsageError."""
    try:
        return DistributeOptions(
            strategy=args.strategy,
            devices=parse_devices(args.devices),
            mixed_precision=args.mixed_precision,
        )
    except DistributeError as err:
        raise UsageError(str(err)) from None


# --- quiet runtime ----------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_runtime(log_path: Path) -> Iterator[None]:
    """Send native stderr, Python warnings and library logging to `log_path`.

    TensorFlow must be imported inside this: its C++ runtime writes banners to descriptor 2 at
    import time, under Python, where nothing else can catch them.
    """
    with native_stderr_to(log_path), open(log_path, "a", encoding="utf-8") as log:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        saved_show = warnings.showwarning

        def to_log(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            log.write(warnings.formatwarning(message, category, filename, lineno, line))
            log.flush()

        warnings.showwarning = to_log
        try:
            yield
        finally:
            warnings.showwarning = saved_show
            root.removeHandler(handler)


# --- entry point ------------------------------------------------------------------------------
def _run_app(args: argparse.Namespace) -> int:
    hparams = resolve_hparams(args)
    options = distribute_options(args)
    if options.strategy == "multiworker":
        # Every worker would need its own app and the same key presses at the same moment.
        raise UsageError(
            "the app trains on one machine; for several hosts use "
            f"`{PROG} train --strategy multiworker`."
        )
    if args.resume is not None and args.model is not None:
        raise UsageError("pass --resume or --model, not both.")
    from tui.app import run_app  # Textual only when the app is wanted

    return run_app(
        hparams,
        preset_name=args.preset,
        data_path=args.data,
        runs_dir=args.runs_dir,
        tensorboard=args.tensorboard,
        resume_path=args.resume,
        model_path=args.model,
        distribute=options,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already reported in one line
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    try:
        if args.command is None:
            return _run_app(args)
        from tui.headless import run_command  # numpy and rich progress: commands only

        with quiet_runtime(tensorflow_log_path()):
            # Created inside so that its stderr is the terminal, not the log.
            console = Console(highlight=False, soft_wrap=True)
            return run_command(args, console)
    except (UsageError, ValueError) as err:
        say_error(str(err))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        say_error("interrupted; nothing saved.")
        return EXIT_INTERRUPTED
    except OSError as err:
        say_error(f"{err.strerror or err}: {err.filename}" if err.filename else str(err))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
