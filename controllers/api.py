"""The JSON HTTP API of the ani controller app (:class:`controllers.ani_controller.AniController`).

This module only routes: method + path -> one of the app's methods, JSON in and out, error
responses.  The operations themselves (and their locking) live on the app.

HTTP API (``127.0.0.1:<api_port>``, JSON in and out)
    ``GET /health``        connected/verified switches, routes installed, down links, failover log
    ``GET /ports``         per-port byte counters, rates and link utilisation
    ``GET /paths``         current router paths between all pairs
    ``GET /meters``        per router: packets and bytes its capacity meter passed and dropped
    ``POST /mitigation``   ``{"action": "rate_limit", "router": R, "mbps": X}`` |
                           ``{"action": "reroute", "avoid": ["A-B", ...]}`` |
                           ``{"action": "undo", "what": "rate_limit"|"reroute"|"all", "router"?: R}``
    ``POST /misconfig``    ``{"kind": "blackhole", "router": R, "dst": D}`` |
                           ``{"kind": "wrong_next_hop", "router": R, "dst": D, "via": N}``
    ``DELETE /misconfig``  roll back every misconfiguration (or ``?id=N`` one of them)
    ``POST /capacity``     ``{"router": R, "mbps": X}`` sets R's forwarding capacity;
                           ``{"router": R}`` restores R's nominal one, ``{}`` every router's

Answers: 200 with the operation's result; 400 ``{"error": ...}`` when the operation rejects
the request (``ValueError``/``KeyError``/``TypeError``, which includes a malformed JSON body);
500 ``{"error": "<Type>: <message>"}`` for anything else (logged); 404 for an unknown path.

The server is a :class:`~http.server.ThreadingHTTPServer` (one daemon thread a request)
served from a daemon thread named ``ani-api``; :func:`start` is called by the app's
constructor.  (os-ken 4.x no longer ships Ryu's WSGI ``ControllerBase``, hence plain
``http.server``.)
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

# The app's logger, so the controller log reads as before.
LOG = logging.getLogger("ani.controller")

#: ``GET`` path -> name of the app method (no arguments) that answers it.
GET_ROUTES = {"/health": "health", "/ports": "ports", "/paths": "current_paths",
              "/meters": "meters"}
#: ``POST`` path -> name of the app method that takes the JSON body.
POST_ROUTES = {"/mitigation": "mitigation", "/misconfig": "misconfig",
               "/capacity": "set_capacity"}


class ApiServer(ThreadingHTTPServer):
    """A threading HTTP server that knows the app its handlers call."""

    daemon_threads = True

    def __init__(self, address, app):
        self.app = app
        super().__init__(address, ApiHandler)


class ApiHandler(BaseHTTPRequestHandler):
    server: ApiServer

    def log_message(self, fmt, *args):  # keep the log for routing events
        LOG.debug("api: " + fmt, *args)

    def _reply(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def _dispatch(self, fn):
        try:
            self._reply(200, fn())
        except (ValueError, KeyError, TypeError) as exc:
            self._reply(400, {"error": str(exc)})
        except Exception as exc:  # the API must survive a bad request
            LOG.exception("api error")
            self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _not_found(self, path):
        self._reply(404, {"error": f"no such endpoint {path}"})

    def do_GET(self):
        path = urlparse(self.path).path
        if path in GET_ROUTES:
            self._dispatch(getattr(self.server.app, GET_ROUTES[path]))
        else:
            self._not_found(path)

    def do_POST(self):
        path = urlparse(self.path).path
        if path in POST_ROUTES:
            op = getattr(self.server.app, POST_ROUTES[path])
            self._dispatch(lambda: op(self._body()))
        else:
            self._not_found(path)

    def do_DELETE(self):
        url = urlparse(self.path)
        if url.path == "/misconfig":
            q = parse_qs(url.query)
            # parsed inside the dispatch: a bad ?id= is a 400, not a dropped connection
            self._dispatch(lambda: self.server.app.rollback(int(q["id"][0]) if "id" in q else None))
        else:
            self._not_found(url.path)


def start(app, port: int) -> ApiServer:
    """Serve ``app``'s API on ``127.0.0.1:port`` (0: any free port) from a daemon thread."""
    httpd = ApiServer(("127.0.0.1", port), app)
    threading.Thread(target=httpd.serve_forever, name="ani-api", daemon=True).start()
    LOG.info("API listening on 127.0.0.1:%d", httpd.server_address[1])
    return httpd
