"""srvmon_cli: the composition layer. The ``srvmon`` command and standalone mode.

It sits above both ``srvmon_agents`` and ``srvmon_server`` and may import either; nothing
imports it (tests/test_layers.py enforces the direction). ``main`` is the click group,
``standalone`` runs a collector and the server in one process.
"""
