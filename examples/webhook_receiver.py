"""A custom receiver for srvmon's alert webhooks, with nothing but the standard library.

srvmon posts an Alertmanager-v4-compatible JSON body on every alert transition (firing,
resolved). This receiver prints one line per alert and could page someone instead.

    python examples/webhook_receiver.py --port 9000
    srvmon server --webhook-url http://127.0.0.1:9000/hook
"""

from __future__ import annotations

import argparse
import contextlib
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def describe(payload: dict[str, Any]) -> list[str]:
    """One human line per alert in a webhook payload."""
    lines = []
    for alert in payload.get("alerts", []):
        labels = alert.get("labels", {})
        annotations = alert.get("annotations", {})
        lines.append(
            f"[{alert.get('status', '?').upper()}] {labels.get('severity', '')} "
            f"{labels.get('alertname', labels.get('rule', '?'))} on {labels.get('machine', '?')}: "
            f"{annotations.get('summary', '')}".strip()
        )
    return lines


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        for line in describe(payload):
            print(line, flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet access log
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on http://{args.host}:{args.port}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
