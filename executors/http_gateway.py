"""The HTTP gateway: Jina's own, plus a Swagger UI that needs no network."""

from pathlib import Path

import fastapi_offline
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jina.serve.runtimes.gateway.http import HTTPGateway

#: Swagger UI's JS and CSS, shipped inside the fastapi-offline wheel.
SWAGGER_ASSETS = Path(fastapi_offline.__file__).parent / "static"
_CDN_DOC_PATHS = {"/docs", "/docs/oauth2-redirect", "/redoc"}


class AudioSearchGateway(HTTPGateway):
    """Jina's HTTP gateway with ``/docs`` served from local assets.

    FastAPI's default Swagger page loads its scripts from a CDN, which leaves ``/docs`` blank on
    an offline machine; this one serves them under ``/static-docs``.
    """

    @property
    def app(self):
        """Jina's FastAPI app, its CDN doc pages swapped for local ones."""
        app = super().app
        app.router.routes = [
            r for r in app.router.routes if getattr(r, "path", None) not in _CDN_DOC_PATHS
        ]
        app.mount("/static-docs", StaticFiles(directory=SWAGGER_ASSETS), name="static-docs")

        @app.get("/docs", include_in_schema=False)
        async def swagger_ui() -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url=app.openapi_url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url="/static-docs/swagger-ui-bundle.js",
                swagger_css_url="/static-docs/swagger-ui.css",
                swagger_favicon_url="/static-docs/favicon.png",
            )

        return app
