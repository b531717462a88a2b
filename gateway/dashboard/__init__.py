"""The web pages the gateway serves from static files of this package: the usage dashboard
(`/dashboard`, vanilla JavaScript modules over the public REST API, with uPlot vendored) and the
interactive API reference (`/docs`, Swagger UI vendored, over /openapi.json). No build step, no CDN:
static/vendor/VENDORED.md says what is vendored and how to update it. May import gateway.http and
gateway.upstream."""
