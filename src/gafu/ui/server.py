"""The HTTP side of `gafu ui`: routing, guards, static pages, project files and the progress stream.

Standard library only (`http.server`): the pages are a few static files and the API is small.
Guards, checked on every request (the event stream included):
- bound to 127.0.0.1 by default, and then only loopback clients asking for a loopback Host are
  served (a web page elsewhere cannot reach the UI through DNS rebinding);
- with `--host`, every request must carry the token printed at start (`?token=` once, then a
  cookie; or the `X-Gafu-Token` header);
- a POST must send JSON, which a form on another site cannot do without the browser asking first;
- files are served only from inside the project (`gafu.ui.files`).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gafu.errors import GafuError
from gafu.ui.api import Api, NotFound
from gafu.ui.files import OutsideProject, content_type, project_file
from gafu.ui.jobs import JobConflict, progress_path, read_events
from gafu.ui.overrides import FieldErrors

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY = 1 << 20  # bytes of JSON a request may send
POLL_SECONDS = 0.5  # how often the event stream looks at progress.jsonl
HEARTBEAT_SECONDS = 15.0  # a comment line keeps proxies and the browser from closing the stream
TOKEN_COOKIE = "gafu_token"
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")

# (method, path) → Api method; each takes the query (GET) or the JSON body (POST).
ROUTES = {
    ("GET", "/api/state"): "get_state",
    ("GET", "/api/pictures"): "get_pictures",
    ("POST", "/api/tags/edit"): "post_tags_edit",
    ("POST", "/api/tags/undo"): "post_tags_undo",
    ("GET", "/api/tags/history"): "get_tags_history",
    ("GET", "/api/tags/stats"): "get_tags_stats",
    ("GET", "/api/check"): "get_check",
    ("GET", "/api/aside"): "get_aside",
    ("POST", "/api/aside"): "post_aside",
    ("POST", "/api/aside/restore"): "post_aside_restore",
    ("POST", "/api/reg/pick"): "post_reg_pick",
    ("GET", "/api/reg/status"): "get_reg_status",
    ("POST", "/api/reg/write"): "post_reg_write",
    ("POST", "/api/tag/run"): "post_tag_run",
    ("GET", "/api/tag/status"): "get_tag_status",
    ("GET", "/api/tag/preview"): "get_tag_preview",
    ("POST", "/api/tag/thresholds"): "post_tag_thresholds",
    ("GET", "/api/plan"): "get_plan",
    ("POST", "/api/plan/overrides"): "post_plan_overrides",
    ("POST", "/api/train/start"): "post_train_start",
    ("POST", "/api/train/stop"): "post_train_stop",
    ("GET", "/api/train/status"): "get_train_status",
    ("GET", "/api/outputs"): "get_outputs",
    ("POST", "/api/sample"): "post_sample",
    ("GET", "/api/sample/status"): "get_sample_status",
}
STATUS_OF = (  # the first matching class gives the HTTP status of a GafuError
    (FieldErrors, HTTPStatus.BAD_REQUEST),
    (NotFound, HTTPStatus.NOT_FOUND),
    (OutsideProject, HTTPStatus.NOT_FOUND),
    (JobConflict, HTTPStatus.CONFLICT),
    (GafuError, HTTPStatus.BAD_REQUEST),
)


@dataclass
class UiSettings:
    """How the server guards itself."""

    token: str | None = None  # required on every request when set (`--host`)
    local_only: bool = True  # refuse clients that are not on this machine
    stopping: threading.Event = field(default_factory=threading.Event)


class UiServer(ThreadingHTTPServer):
    """A threading HTTP server holding the project's Api and the guard settings."""

    daemon_threads = True  # event streams must not hold up shutdown

    def __init__(self, address: tuple[str, int], api: Api, settings: UiSettings):
        self.api, self.settings = api, settings
        super().__init__(address, Handler)

    def shutdown(self) -> None:
        """Stop serving; open event streams end at their next poll."""
        self.settings.stopping.set()
        super().shutdown()


def make_server(
    project: Path, host: str = "127.0.0.1", port: int = 7860, *, remote: bool = False
) -> UiServer:
    """A server for `project` on host:port (port 0: any free one); `remote` requires a token."""
    settings = UiSettings(token=secrets.token_urlsafe(24) if remote else None, local_only=not remote)
    try:
        return UiServer((host, port), Api(Path(project)), settings)
    except OSError as exc:
        raise GafuError(
            f"cannot listen on {host}:{port} ({exc.strerror})", hint="choose another --port"
        ) from exc


class Handler(BaseHTTPRequestHandler):
    """One request: guard, route, answer."""

    server: UiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the terminal shows errors only."""

    # --- entry points ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        """Pages, static files, project files, thumbnails, the API and the event stream."""
        self._handle("GET")

    def do_POST(self) -> None:
        """API writes (JSON bodies only)."""
        self._handle("POST")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        refusal = self._refusal(query)
        if refusal is not None:
            self._send_json({"error": refusal[1]}, refusal[0])
            return
        try:
            self._route(method, url.path, query)
        except GafuError as exc:
            status = next(code for cls, code in STATUS_OF if isinstance(exc, cls))
            self._send_json({"error": str(exc), "fields": getattr(exc, "fields", {})}, status)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser left
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            self._send_json({"error": f"internal error: {exc!r}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    # --- guards ------------------------------------------------------------------------------------
    def _refusal(self, query: dict[str, str]) -> tuple[HTTPStatus, str] | None:
        cookie = SimpleCookie(self.headers.get("Cookie") or "").get(TOKEN_COOKIE)
        tokens = [query.get("token"), self.headers.get("X-Gafu-Token"), cookie.value if cookie else None]
        return refusal(self.server.settings, self.client_address[0], self.headers.get("Host") or "", tokens)

    # --- routing -------------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, str]) -> None:
        api = self.server.api
        if method == "GET" and path in ("/", "/index.html"):
            self._send_file(STATIC_DIR / "index.html")
        elif method == "GET" and path.startswith("/static/"):
            self._send_static(path.removeprefix("/static/"))
        elif method == "GET" and path.startswith("/files/"):
            self._send_file(project_file(api.root, self._raw_path().removeprefix("/files/")), project=True)
        elif method == "GET" and path.startswith("/thumb/"):
            self._send_bytes(api.thumbnail(self._raw_path().removeprefix("/thumb/")), "image/jpeg")
        elif method == "GET" and path == "/api/train/events":
            self._stream_progress(query)
        elif (method, path) in ROUTES:
            argument = query if method == "GET" else self._json_body()
            self._send_json(getattr(api, ROUTES[method, path])(argument))
        elif any(p == path for _, p in ROUTES):
            self._send_json({"error": f"{method} not allowed on {path}"}, HTTPStatus.METHOD_NOT_ALLOWED)
        else:
            raise NotFound(f"no such page: {path}")

    def _raw_path(self) -> str:
        """The request path still URL-encoded (project paths are decoded once, by `project_file`)."""
        return self.path.split("?", 1)[0]

    def _json_body(self) -> dict[str, Any]:
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            raise GafuError("send the request body as application/json")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise GafuError(f"request body over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise GafuError(f"the request body is not JSON ({exc})") from exc
        if not isinstance(body, dict):
            raise GafuError("the request body must be a JSON object")
        return body

    # --- answers --------------------------------------------------------------------------------------
    def _send_json(self, data: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self._send_bytes(body, "application/json; charset=utf-8", status)

    def _send_bytes(
        self,
        body: bytes,
        kind: str,
        status: HTTPStatus = HTTPStatus.OK,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self._token_cookie()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _token_cookie(self) -> None:
        token = self.server.settings.token
        if token is not None:
            self.send_header("Set-Cookie", f"{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")

    def _send_static(self, name: str) -> None:
        path = STATIC_DIR / name
        if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
            raise NotFound(f"no such file: /static/{name}")
        self._send_file(path)

    def _send_file(self, path: Path, *, project: bool = False) -> None:
        # A project's HTML (sample indexes) is shown sandboxed: no scripts run with the UI's rights.
        headers = {"Content-Security-Policy": "sandbox"} if project and path.suffix == ".html" else {}
        self._send_bytes(path.read_bytes(), content_type(path), headers=headers)

    def _stream_progress(self, query: dict[str, str]) -> None:
        """Server-Sent Events: each progress.jsonl line as a `progress` event, `status` when running changes.

        The event id is the byte offset after the line, so a reconnecting EventSource (which sends
        Last-Event-ID) resumes where it left off. `?once=1` sends what is there and ends.
        """
        api, stopping = self.server.api, self.server.settings.stopping
        given = self.headers.get("Last-Event-ID") or query.get("offset") or "0"
        offset = int(given) if given.isdigit() else 0
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self._token_cookie()
        self.end_headers()
        self.close_connection = True
        running, last_write = None, time.monotonic()
        while not stopping.is_set():
            events, offset = read_events(progress_path(api.root), offset)
            chunks = [f"id: {end}\nevent: progress\ndata: {json.dumps(ev)}\n\n" for end, ev in events]
            now_running = api.trainer.running_pid() is not None
            if now_running != running:
                running = now_running
                chunks.append(f"event: status\ndata: {json.dumps({'running': running})}\n\n")
            if not chunks and time.monotonic() - last_write > HEARTBEAT_SECONDS:
                chunks.append(": ping\n\n")
            if chunks:
                self.wfile.write("".join(chunks).encode("utf-8"))
                self.wfile.flush()
                last_write = time.monotonic()
            if query.get("once"):
                return
            stopping.wait(POLL_SECONDS)


def refusal(
    settings: UiSettings, client: str, host_header: str, tokens: list[str | None]
) -> tuple[HTTPStatus, str] | None:
    """Why a request is refused (status, message), or None: see the module's guards."""
    if settings.local_only:
        if not ipaddress.ip_address(client).is_loopback:
            return HTTPStatus.FORBIDDEN, "gafu ui serves this machine only; start it with --host"
        host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        if host not in LOCAL_NAMES:
            return HTTPStatus.FORBIDDEN, f"unexpected Host {host!r}; open the address gafu ui printed"
    if settings.token is not None:
        expected = settings.token.encode()
        if not any(t is not None and hmac.compare_digest(t.encode(), expected) for t in tokens):
            return HTTPStatus.UNAUTHORIZED, "missing or wrong token; open the address gafu ui printed"
    return None


def url_of(server: UiServer) -> str:
    """The address to open, with the token when one is required."""
    host, port = server.server_address[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    token = server.settings.token
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
