"""Experiments over many runs: sweeps (Optuna) and the search spaces they draw from."""
