"""Settings: hyperparameters with one spec per field, presets, TOML, the typed requests."""
