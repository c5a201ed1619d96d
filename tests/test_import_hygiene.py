"""What a fresh interpreter loads, one rule per run: the core never imports Textual; only the few
modules that are Keras code import TensorFlow (the engine answers while it loads); the CLI and
the app's first frame wait for neither numpy nor TensorFlow."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from dataclasses import dataclass

import pytest

import tui.core
import tui.engine

CORE = sorted(m.name for m in pkgutil.walk_packages(tui.core.__path__, "tui.core.") if not m.ispkg)
ENGINE = sorted(
    m.name
    for m in pkgutil.iter_modules(tui.engine.__path__, "tui.engine.")
    if m.name != "tui.engine.__main__"  # a script: it exits without its argument
)
KERAS_CODE = {
    "tui.core.data.augment",
    "tui.core.inspect.health",
    "tui.core.runs.record",
    "tui.core.runs.resume",
    "tui.core.training.callback",
    "tui.core.training.replay",
    "tui.core.training.session",
}
"""The modules that subclass or call Keras as they load. Every other module of the core and the
engine is checked, a new one included, without being named here."""


@dataclass(frozen=True)
class Rule:
    imports: tuple[str, ...]
    forbidden: tuple[str, ...]
    """Modules that may not be loaded, nor any of their submodules."""
    then: str = ""
    """Code run after the imports."""


RULES = {
    "the core never imports textual": Rule(tuple(CORE), ("textual", "textual_plotext")),
    "only keras code imports tensorflow": Rule(
        tuple(m for m in CORE + ENGINE if m not in KERAS_CODE), ("tensorflow", "keras")
    ),
    "the cli imports nothing heavy": Rule(
        ("tui.cli",), ("tensorflow", "keras", "textual", "numpy")
    ),
    # Everything loaded here runs before the first frame; numpy alone was a third of it.
    "the app's first frame waits for neither numpy nor tensorflow": Rule(
        (
            "tui.cli",
            "tui.app",
            "tui.launch",
            "tui.engine.client",
            "tui.engine.spawn",
            "tui.engine.connect",
        ),
        (
            # Optuna (and the sqlalchemy it brings) waits for a sweep's screen to open.
            *("numpy", "tensorflow", "keras", "rich.progress", "optuna"),
            *(
                "tui.core.training.controller",
                "tui.core.training.session",
                "tui.core.training.callback",
            ),
        ),
        then="tui.app.create_app(tui.cli.app_options(tui.cli.build_parser().parse_args([])))",
    ),
}


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_a_fresh_interpreter_loads_nothing_forbidden(rule: Rule) -> None:
    code = f"import sys, {', '.join(rule.imports)}\n{rule.then}\nprint('\\n'.join(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(done.stdout.split())
    found = {m for m in loaded if any(m == f or m.startswith(f"{f}.") for f in rule.forbidden)}
    assert not found, sorted(found)


def test_the_rules_cover_every_module() -> None:
    assert {"tui.core.runs.recorder", "tui.core.training.controller"} <= set(CORE)
    assert set(CORE) >= KERAS_CODE, "a module named here that no longer exists"
    assert {"tui.engine.server", "tui.engine.client"} <= set(ENGINE)
