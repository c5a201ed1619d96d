"""The runs screen's tree, notes and filter, and compare's table of what differed, on hand-made
runs (`fixed_runs`): a run, its branch at epoch 2 (learning rate halved), and three others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app_helpers import until
from test_runs_screen import RunsHost, fixed_runs, listed
from textual.widgets import DataTable, Input, Static

from tui.core.runs.layout import RUN_JSON
from tui.core.runs.lock import RunLock
from tui.screens.compare import CompareScreen
from tui.screens.note import NoteScreen
from tui.screens.runs import RunsScreen

__all__ = ["fixed_runs"]  # the fixture, used by name

PARENT, BRANCH = "20250302-140000-fast", "20250302-160000-fast"


def shown(screen: RunsScreen) -> list[str]:
    return [summary.name for summary, _ in screen.shown]


class SayingHost(RunsHost):
    """RunsHost that keeps each notification's message, as said."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.said: list[str] = []

    def notify(self, message: str, *args: Any, **kwargs: Any) -> None:
        self.said.append(message)
        super().notify(message, *args, **kwargs)


def detail(screen: RunsScreen) -> str:
    return str(screen.query_one("#runs-detail", Static).render())


async def test_a_branch_is_listed_under_its_parent(fixed_runs: Path) -> None:
    app = RunsHost(fixed_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await listed(pilot)
        names = shown(screen)
        assert names.index(BRANCH) == names.index(PARENT) + 1
        depths = dict(zip(names, (depth for _, depth in screen.shown), strict=True))
        assert depths[BRANCH] == 1 and depths[PARENT] == 0
        row = screen.table.get_row_at(names.index(BRANCH))
        assert str(row[1]).startswith("└@2 ")
        assert "lr halved at 2 #lr-drop" in str(row[-1])
        await pilot.press(*["down"] * names.index(BRANCH))
        assert f"branch of {PARENT} at epoch 2" in detail(screen)
        assert "tags: #lr-drop" in detail(screen)


async def test_n_writes_the_note_and_tags_into_run_json(fixed_runs: Path) -> None:
    app = RunsHost(fixed_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await listed(pilot)
        await pilot.press(*["down"] * shown(screen).index(PARENT), "n")
        assert isinstance(app.screen, NoteScreen)
        app.screen.query_one("#note-text", Input).value = "the lr-drop branch's parent"
        app.screen.query_one("#note-tags", Input).value = "#parent, fast"
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is screen and not screen.loading)
        info = json.loads((fixed_runs / PARENT / RUN_JSON).read_text())
        assert info["note"] == "the lr-drop branch's parent"
        assert info["tags"] == ["parent", "fast"]
        # The list read again shows it, the cursor still on the run.
        await until(pilot, lambda: "the lr-drop branch's parent" in detail(screen))
        assert "tags: #parent #fast" in detail(screen)


async def test_n_refuses_a_run_that_is_training_and_writes_nothing(fixed_runs: Path) -> None:
    before = (fixed_runs / PARENT / RUN_JSON).read_text()
    app = SayingHost(fixed_runs)
    with RunLock(fixed_runs / PARENT, "train").acquire():
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await listed(pilot)
            await pilot.press(*["down"] * shown(screen).index(PARENT), "n")
            assert app.screen is screen, "no note dialog"
            assert app.said == [
                f"Run {PARENT} is training: its trainer rewrites run.json every epoch; add the "
                "note once it has stopped."
            ]
    assert (fixed_runs / PARENT / RUN_JSON).read_text() == before


async def test_the_filter_hides_runs_that_do_not_match(fixed_runs: Path) -> None:
    app = RunsHost(fixed_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await listed(pilot)
        assert len(shown(screen)) == 5
        await pilot.press("slash", *"#lr-drop")
        assert shown(screen) == [BRANCH]
        assert screen.table.row_count == 1
        header = str(screen.query_one("#runs-header", Static).render())
        assert "1 of 5 runs match '#lr-drop'" in header
        await pilot.press("enter")  # keeps the filter, gives the list the keys back
        assert screen.table.has_focus and shown(screen) == [BRANCH]
        await pilot.press("escape")  # clears it
        assert len(shown(screen)) == 5
        # Words match the note and the preset, every word must match.
        await pilot.press("slash", *"baseline default")
        assert shown(screen) == ["20250301-091500-default"]
        await pilot.press("ctrl+u", *"nothing-like-it")
        assert shown(screen) == []
        assert "No run matches the filter" in detail(screen)
        await pilot.press("escape", "escape")
        assert app.opened == [None], "Escape clears the filter first, then closes"


async def test_compare_tabulates_exactly_the_settings_that_differ(fixed_runs: Path) -> None:
    app = RunsHost(fixed_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await listed(pilot)
        names = shown(screen)
        await pilot.press(*["down"] * names.index(PARENT), "space", "down", "space", "c")
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        await pilot.pause()
        table = compare.query_one("#compare-table", DataTable)
        header = [str(column.label) for column in table.ordered_columns]
        # The branch halved the learning rate and nothing else.
        assert header == [
            "run",
            "branch of",
            "learning_rate",
            "best val",
            "test",
            "epochs",
            "time",
        ]
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows[0][0].endswith(PARENT) and rows[1][0].endswith(BRANCH)
        assert rows[0][1] == "" and rows[1][1] == f"{rows[0][0][0]}@2", "the parent's marker"
        assert [row[2] for row in rows] == ["0.001", "0.0005"]
        assert [row[4] for row in rows] == ["99.21%", "99.34%"]
        assert not compare.query("#compare-same")
