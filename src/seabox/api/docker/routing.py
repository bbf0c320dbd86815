"""Docker route registration: each path served bare and under any /vN.NN prefix, Docker's headers, 501 for the rest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from seabox import __version__
from seabox.api.body import parse_json
from seabox.errors import InvalidArgument, NotImplementedYet

API_VERSION = "1.50"
MIN_API_VERSION = "1.24"
VERSION_PREFIX = r"/{api_version:v\d+\.\d+}"
MAX_FILTER_DEPTH = 3  # {"label": {"a=b": true}}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DockerRoutes:
    """Collects (method, path, handler) and registers each path with and without a version prefix."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, Handler]] = []

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.items.append((method, path, handler))
            return handler

        return register

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("GET", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("POST", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path)

    def head(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("HEAD", path)

    def add_to(self, app: web.Application) -> None:
        for method, path, handler in self.items:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, VERSION_PREFIX + path, handler)


def query_filters(request: web.Request) -> dict[str, list[str]]:
    """Docker's `filters` query parameter: {"name": ["x"]} (or the older {"name": {"x": true}})."""
    raw = request.query.get("filters")
    if not raw:
        return {}
    data = parse_json(raw, MAX_FILTER_DEPTH, "query parameter filters", "filters")
    if not isinstance(data, dict):
        raise InvalidArgument("filters must be a JSON object", field="filters")
    return {k: [str(x) for x in v] if isinstance(v, (list, dict)) else [str(v)] for k, v in data.items()}


async def docker_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response carries the API version the docker CLI negotiates with."""
    response.headers["Api-Version"] = API_VERSION
    response.headers["Docker-Experimental"] = "false"
    response.headers["Ostype"] = "linux"
    response.headers["Server"] = f"Seabox/{__version__} (linux)"
    # the docker CLI unwraps {"message"} only under exactly this type (aiohttp adds "; charset=utf-8")
    if not request.path.startswith("/v1/") and response.content_type == "application/json":
        response.headers["Content-Type"] = "application/json"


async def not_implemented(request: web.Request) -> web.StreamResponse:
    """Anything Docker serves that Seabox does not: a JSON 501, never an HTML page or a hang.

    The words "not supported" let `docker inspect NAME` skip object kinds Seabox lacks (plugins)."""
    if request.path.startswith("/v1/"):
        raise web.HTTPNotFound(text='{"message": "no such endpoint"}', content_type="application/json")
    raise NotImplementedYet(f"{request.method} {request.path} is not supported by Seabox")


def add_fallback(app: web.Application) -> None:
    """Must be registered last: it matches every path."""
    app.router.add_route("*", "/{tail:.*}", not_implemented)
