"""The engine: the training controller in its own process, served on a Unix socket.

`protocol` (the typed messages), `registry` (where live engines are found, who may connect),
`server` (the engine side), `client` (the viewer side), `spawn` (starting one in the
background), `main` (the engine process), `commands` (`ps`, `stop`, `train --detach`).
Only `main` and `server` import the controller (and so TensorFlow, once it loads); a viewer
imports `protocol`, `registry`, `client` and `spawn`.
"""
