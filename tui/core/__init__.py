"""The training core, no Textual here: settings, data, training, runs, inspect, platform, render."""
