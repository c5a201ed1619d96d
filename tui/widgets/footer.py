"""A footer that always fits: past its width, the keys lose their descriptions, least needed
first, so that every key stays on screen and `? Help` and `q Quit` are the last to lose theirs."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

LAST_TO_SHORTEN = ("help", "quit", "close")
"""Actions whose descriptions go last: how to find the rest, and how to leave."""


class FittingFooter(Footer):
    """Textual's footer (compact), its descriptions shortened to fit the width."""

    def __init__(self) -> None:
        super().__init__(compact=True)
        self._fitted_width = 0
        self._shown: tuple[tuple[str, str, bool, str], ...] | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        """Recompose only when the keys shown or their states changed: the app refreshes the
        bindings at every engine event, and a recompose re-lays out the whole screen (while
        training that was most of what a viewer cost its engine's core between epochs)."""
        shown = tuple(
            (binding.key, binding.action, enabled, binding.description)
            for _node, binding, enabled, _tooltip in screen.active_bindings.values()
            if binding.show
        )
        if shown == self._shown:
            return
        self._shown = shown
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        items: dict[str, tuple[Binding, bool, str]] = {}
        for _node, binding, enabled, tooltip in self.screen.active_bindings.values():
            if binding.show:
                items.setdefault(binding.action, (binding, enabled, tooltip))
        shown = list(items.values())
        keys = [self.app.get_key_display(binding) for binding, _, _ in shown]
        labels = [binding.description for binding, _, _ in shown]
        width = self.size.width or self.app.size.width
        self._fitted_width = width

        def needed() -> int:
            return sum(
                len(k) + (len(d) + 1 if d else 0) + 1 for k, d in zip(keys, labels, strict=True)
            )

        late = [i for i, (b, _, _) in enumerate(shown) if b.action in LAST_TO_SHORTEN]
        order = [i for i in reversed(range(len(shown))) if i not in late] + late
        for index in order:
            if needed() <= width:
                break
            labels[index] = ""
        self.styles.grid_size_columns = len(shown)
        for (binding, enabled, tooltip), key, label in zip(shown, keys, labels, strict=True):
            yield FooterKey(
                binding.key,
                key,
                label,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip or binding.description,
            ).data_bind(compact=Footer.compact)

    def on_resize(self, event: Resize) -> None:
        if event.size.width != self._fitted_width:
            self.refresh(recompose=True)
