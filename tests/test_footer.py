"""The footer redraws its keys when they change, and only then: a recompose re-lays out the
whole screen, and the app refreshes the bindings at every engine event."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Label

from tui.widgets.footer import FittingFooter


class CountingFooter(FittingFooter):
    composed = 0

    def compose(self) -> ComposeResult:
        CountingFooter.composed += 1
        yield from super().compose()


class KeysApp(App[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop", "Stop"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.can_stop = True

    def compose(self) -> ComposeResult:
        yield Label("body")
        yield CountingFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return (True if self.can_stop else None) if action == "stop" else True

    def action_stop(self) -> None:
        pass


def stop_key_disabled(app: KeysApp) -> bool:
    [stop] = [key for key in app.query("FooterKey") if key.key == "s"]  # type: ignore[attr-defined]
    return stop.has_class("-disabled")


async def test_unchanged_bindings_do_not_recompose_and_a_changed_key_does() -> None:
    app = KeysApp()
    async with app.run_test(size=(80, 10)) as pilot:
        footer = app.query_one(CountingFooter)
        seen = -1
        for _ in range(50):  # settled: composed at the final width, and no recompose pending
            await pilot.pause()
            fitted = footer.query("FooterKey") and footer.size.width == footer._fitted_width
            if fitted and CountingFooter.composed == seen:
                break
            seen = CountingFooter.composed
        assert not stop_key_disabled(app)
        before = CountingFooter.composed
        for _ in range(5):
            app.refresh_bindings()
            await pilot.pause()
        assert CountingFooter.composed == before

        app.can_stop = False
        app.refresh_bindings()
        for _ in range(20):  # the recompose is scheduled after the next refresh
            await pilot.pause()
            if stop_key_disabled(app):
                break
        assert stop_key_disabled(app)
        assert CountingFooter.composed > before
