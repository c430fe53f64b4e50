"""``python -m srvmon_cli``: the ``srvmon`` command."""

from srvmon_cli.main import main

main()
