"""What imports what, checked in fresh interpreters: the core never imports Textual; the app,
the engine's client side and the engine itself (until it loads) never import TensorFlow; the
app's first paint waits for neither numpy nor TensorFlow."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import tui.core
import tui.engine

CORE_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(tui.core.__path__, "tui.core.") if not m.ispkg
)
HEAVY = {"tensorflow", "keras"}
TENSORFLOW_FREE = [
    *(
        "tui.core.settings.hyperparams",
        "tui.core.training.events",
        "tui.core.data.mnist",
        "tui.core.training.snapshot",
    ),
    *(
        "tui.core.training.phase",
        "tui.core.settings.requests",
        "tui.core.platform.placement",
        "tui.core.platform.devices",
    ),
    *(
        "tui.core.platform.quiet",
        "tui.core.training.budget",
        "tui.core.training.adapter",
        "tui.core.training.controls",
    ),
    *("tui.core.runs.files", "tui.core.runs.layout", "tui.core.runs.catalog"),
    *(
        "tui.core.runs.lock",
        "tui.core.inspect.predictions",
        "tui.core.render",
        "tui.core.training.schedule",
    ),
    # The controller loads TensorFlow in `load()`, so that an engine answers while it loads.
    *("tui.core.training.controller", "tui.engine.server", "tui.engine.main"),
    *("tui.engine.client", "tui.engine.connect", "tui.engine.spawn", "tui.engine.commands"),
    *("tui.engine.protocol", "tui.engine.registry", "tui.engine.arrays", "tui.engine.handle"),
]


def _modules_after_import(*modules: str) -> set[str]:
    code = f"import sys, {', '.join(modules)}; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


def test_every_core_module_is_found() -> None:
    expected = {
        "tui.core.settings.hyperparams",
        "tui.core.training.session",
        "tui.core.training.controller",
    }
    assert expected | {"tui.core.runs.catalog", "tui.core.runs.record"} <= set(CORE_MODULES)


def test_no_core_module_imports_textual() -> None:
    loaded = _modules_after_import(*CORE_MODULES)
    assert loaded >= HEAVY, "the heavy modules were imported too, so this checks them all"
    assert not {m for m in loaded if m == "textual" or m.startswith("textual.")}


def test_the_light_modules_leave_tensorflow_alone() -> None:
    loaded = _modules_after_import(*TENSORFLOW_FREE)
    assert not HEAVY & loaded, sorted(HEAVY & loaded)
    assert {m.name for m in pkgutil.iter_modules(tui.engine.__path__, "tui.engine.")} <= {
        *TENSORFLOW_FREE,
        "tui.engine.__main__",
    }


def test_starting_the_app_imports_neither_numpy_nor_tensorflow() -> None:
    # Everything imported here runs before the first frame; numpy alone was a third of it.
    loaded = _modules_after_import("tui.cli", "tui.app", "tui.launch")
    assert not {"numpy", "tensorflow", "keras", "rich.progress"} & loaded
