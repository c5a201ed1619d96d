"""The run directory: what a training run leaves on disk, and how it is read back.

`files` (atomic writes), `layout` (the directory and its records), `catalog` (listing and
health, without TensorFlow), `lock` (one writer per run), `recorder` (a trainer's policy:
which run it records into, what goes in it, what reopening one decides) and, importing Keras,
`record` (the callbacks that write during `fit`) and `resume` (reopening and repairing a run).
"""
