"""The original Java back end's HTTP, SSE and WebSocket contract, served by ``srvmon server``.

Off unless ``--legacy-api`` / ``SRVMON_LEGACY_API`` turns it on (``LegacyConfig.enabled``).
``app.make_app`` then calls :func:`srvmon_server.legacy.routes.install`, which registers a
listener with the server's live publisher (``ServerContext.live.listen``) and returns the
routes. docs/migration.md lists every route, field and difference.

Modules: ``config`` (LegacyConfig), ``options`` (the ``--legacy-*`` click options),
``java`` (Java's number and time formats), ``thresholds`` (the seven limits ⟷ fleet-wide
rules), ``messages`` (alert events → the five messages and history items), ``compact``
(a batch → the WebSocket document), ``live`` (the live listener, bounded fan-outs),
``handlers`` and ``websocket`` (the routes), ``routes`` (the route table).
"""
