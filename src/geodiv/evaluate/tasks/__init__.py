"""Downstream tasks: the task model and reader base (``base``), one reader module per task format, and the
registry that registers them and loads a task (``registry.load_task``).

The package imports nothing itself, so that a reader (or the SimEarth task generator) importing ``base`` does not
pull in the registry, which imports them.
"""
