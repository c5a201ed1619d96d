"""The core never imports Textual, and the app's first paint never waits for TensorFlow."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import tui.core

CORE_MODULES = sorted(
    f"tui.core.{m.name}" for m in pkgutil.iter_modules(tui.core.__path__) if not m.ispkg
)


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


def test_core_modules_are_found() -> None:
    assert {"tui.core.config", "tui.core.session", "tui.core.data"} <= set(CORE_MODULES)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_textual(module: str) -> None:
    loaded = _modules_after_import(module)
    assert "textual" not in loaded


@pytest.mark.parametrize("module", ["tui.core.config", "tui.core.events", "tui.core.data"])
def test_light_core_modules_do_not_import_tensorflow(module: str) -> None:
    # The app imports these before its first frame; TensorFlow takes seconds to load.
    loaded = _modules_after_import(module)
    assert "tensorflow" not in loaded and "keras" not in loaded


def test_starting_the_app_imports_neither_numpy_nor_tensorflow() -> None:
    # Everything imported here runs before the first frame (target: under 0.5 s); numpy alone
    # was a third of it. The workers and the prediction screens import it when it is needed.
    loaded = _modules_after_import("tui.cli, tui.app")
    assert not {"numpy", "tensorflow", "keras", "rich.progress"} & loaded
