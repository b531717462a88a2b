"""Routes of the dashboard and of the API reference: two HTML pages and their static files.

The pages hold no data and no credentials: the dashboard's JavaScript asks for a key (or a login)
and calls the REST API with it; the key stays in the tab's sessionStorage.
"""

from __future__ import annotations

import os
import pathlib
from os import PathLike

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gateway.http import openapi

STATIC = pathlib.Path(__file__).with_name("static")
STATIC_PATH = "/dashboard/static"
# The pages change with the package: revalidate them (the static files carry ETags, so that is a 304).
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
# The pages run only their own scripts and talk only to this gateway, so nothing injected could send the
# credential elsewhere (uPlot and Swagger UI set inline styles; blob: is the CSV download).
PAGE_HEADERS = {**HEADERS, "Content-Security-Policy": (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"), "X-Frame-Options": "DENY"}


@openapi.documented(openapi.Doc("The usage dashboard (HTML; log in with an API key or a username)",
                                tags=("meta",), security=False))
async def dashboard(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


@openapi.documented(openapi.Doc("Interactive API reference over /openapi.json (HTML, Swagger UI)",
                                tags=("meta",), security=False))
async def docs(request: Request) -> FileResponse:
    return FileResponse(STATIC / "docs.html", headers=PAGE_HEADERS)


class _Static(StaticFiles):
    def file_response(self, full_path: PathLike[str] | str, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(HEADERS)
        return response


def routes() -> list[BaseRoute]:
    return [
        Route("/dashboard", dashboard),
        Route("/docs", docs),
        Mount(STATIC_PATH, _Static(directory=STATIC), name="dashboard-static"),
    ]
