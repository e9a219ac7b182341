"""The web UI: a single-page application served by the API process.

Everything it needs is in ``static/`` and served by Squall itself (no CDN, no
build step): plain ES modules, one style sheet. The pages read and steer
Squall only through the public REST API and the event stream, with the
signed-in user's token, so the UI can do nothing the API would not allow.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PREFIX = "/ui"


class _Assets(StaticFiles):
    """Static files that the browser revalidates (an upgrade ships new ones)."""

    def file_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount(app: FastAPI) -> None:
    """Serve the UI at /ui/ (and send / there)."""

    async def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    async def index() -> FileResponse:
        return FileResponse(
            STATIC / "index.html",
            headers={
                "Cache-Control": "no-cache",
                # Only our own scripts, styles and API: no inline script can run.
                "Content-Security-Policy": (
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
                ),
            },
        )

    app.add_api_route("/", root, include_in_schema=False)
    app.add_api_route(f"{PREFIX}/", index, include_in_schema=False)
    app.mount(PREFIX, _Assets(directory=STATIC), name="ui")
