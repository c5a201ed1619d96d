"""Textual widgets used by the app and its screens."""
