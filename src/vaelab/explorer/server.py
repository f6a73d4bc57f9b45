"""The explorer's web server: Starlette routes around an :class:`~vaelab.explorer.session.Explorer`, run
by uvicorn on 127.0.0.1 (the ``explore`` extra).

Every ``/api/...`` answer is JSON. A bad request gets a 400 with ``{"error": message}``; an
unexpected failure a 500 with a one-line message; neither stops the server. The page and
plotly.js come from the installed packages, so it works offline.
"""

from __future__ import annotations

import errno
import inspect
import ipaddress
import json
import socket
import threading
from pathlib import Path
from typing import Any, Callable

from vaelab.errors import ConfigError, notice
from vaelab.io import json_text
from vaelab.explorer.session import BadRequest, Explorer

PAGE = Path(__file__).with_name("page.html")
MAX_BODY = 1 << 20  # bytes: a request is a few numbers; anything bigger is refused


def require_stack() -> None:
    """Fail in one line, saying how to install it, where the server stack is missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError("the explorer needs its server stack: pip install 'vaelab[explore]' "
                          "(starlette and uvicorn)") from None


def plotly_js() -> Path:
    """plotly.min.js as shipped inside the installed plotly package (no CDN)."""
    try:
        import plotly
    except ImportError:
        raise ConfigError("the explorer draws with plotly.js from the plotly package: pip install plotly") from None
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def make_app(explorer: Explorer):
    """The Starlette application serving ``explorer``."""
    require_stack()
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.routing import Route

    class JSONAnswer(JSONResponse):  # every answer, the error answers included
        """JSON with a NaN or infinite number as ``null`` (missing): Starlette's own refuses them with a 500."""

        def render(self, content: Any) -> bytes:
            return json_text(content).encode("utf-8")

    def answer(work: Callable[[], Any]) -> JSONAnswer:
        try:
            return JSONAnswer(work())
        except BadRequest as error:
            return JSONAnswer({"error": str(error)}, status_code=400)
        except Exception as error:  # a bug: say so in one line, keep serving
            message = f"internal error ({type(error).__name__}): {error}".splitlines()[0]
            notice(message)
            return JSONAnswer({"error": message}, status_code=500)

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise BadRequest(f"the request body is {len(raw)} bytes: send at most {MAX_BODY}")
        try:
            payload = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: a body of 100,000 '['s
            raise BadRequest("the request body is not JSON: send a JSON object") from None
        if not isinstance(payload, dict):
            raise BadRequest("the request body must be a JSON object")
        return payload

    def post(method: Callable[..., Any], fields: tuple[str, ...]):
        parameters = inspect.signature(method).parameters
        required = [name for name in fields if parameters[name].default is inspect.Parameter.empty]

        async def endpoint(request: Request) -> JSONAnswer:
            try:
                payload = await body(request)
            except BadRequest as error:
                return JSONAnswer({"error": str(error)}, status_code=400)
            unknown, missing = set(payload) - set(fields), [name for name in required if name not in payload]
            if unknown or missing:
                problem = (f"unknown field(s) {', '.join(sorted(unknown))}" if unknown
                           else f"missing field(s) {', '.join(missing)}")
                return JSONAnswer({"error": f"{problem}: send {', '.join(fields)}"}, status_code=400)
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(answer, lambda: method(**payload))
        return endpoint

    def get(work: Callable[[Request], Any]):
        async def endpoint(request: Request) -> JSONAnswer:
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(answer, lambda: work(request))
        return endpoint

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    script = plotly_js()

    async def plotly(request: Request) -> FileResponse:
        return FileResponse(script, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    async def not_found(request: Request, error: Exception) -> JSONAnswer:
        status = getattr(error, "status_code", 404)
        return JSONAnswer({"error": f"{request.method} {request.url.path}: no such page"
                                      if status == 404 else f"{request.method} not allowed here"},
                            status_code=status)

    routes = [
        Route("/", page),
        Route("/plotly.min.js", plotly),
        Route("/api/summary", get(lambda request: explorer.summary())),
        Route("/api/map", get(lambda request: explorer.map(request.query_params.get("projection", "pca")))),
        Route("/api/point", get(lambda request: explorer.point(request.query_params.get("i")))),
        Route("/api/decode", post(explorer.decode, ("key", "z", "label")), methods=["POST"]),
        Route("/api/plane", post(explorer.plane, ("keys", "source", "x", "y")), methods=["POST"]),
        Route("/api/interpolate", post(explorer.interpolate, ("keys", "a", "b", "steps", "path")), methods=["POST"]),
        Route("/api/centroids", post(explorer.centroids, ("keys", "sigma", "seed")), methods=["POST"]),
        Route("/api/prior", post(explorer.prior, ("keys", "seed", "n", "source")), methods=["POST"]),
        Route("/api/attribute", post(explorer.attribute, ("keys", "name", "point", "steps")), methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), or a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it a kept-alive connection waits ~40 ms per answer (Nagle's
    # algorithm holds the body behind the headers until the client's delayed ACK; measured, bench/explore.py).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:  # the host is wrong, not the port
            raise ConfigError(f"cannot listen on {host} ({error.strerror}): give --host a name or address of this "
                              "machine (127.0.0.1, the default, or 0.0.0.0 for every interface)") from None
        raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror}): choose another --port "
                          "(or leave it out for a free one)") from None
    sock.listen(128)
    return sock


class Server:
    """The explorer's uvicorn server on an already bound socket; ``start`` runs it in a thread, ``run``
    in this one (until Ctrl-C)."""

    def __init__(self, explorer: Explorer, host: str = "127.0.0.1", port: int = 0) -> None:
        require_stack()
        import uvicorn

        self.explorer = explorer
        self.socket = open_socket(host, port)  # first: a host it cannot listen on is the one thing said
        if not is_loopback(host):
            notice(f"the explorer listens on {host}: anyone who can reach this machine can use it "
                   "(it only reads, but it is not protected)")
        bound_host, self.port = self.socket.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{self.port}/"
        config = uvicorn.Config(make_app(explorer), log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until interrupted."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self) -> "Server":
        """Serve in a background thread; return once it answers."""
        import time

        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
