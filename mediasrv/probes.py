"""``/healthz``, ``/readyz`` and ``/metrics``: for probes and scrapers, so no credentials."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mediasrv.health import HealthMonitor
from mediasrv.metrics import Metrics


def probe_routes(monitor: HealthMonitor, metrics: Metrics) -> list[Route]:
    """The three routes, bound to this app's health monitor and metrics."""

    async def healthz(request: Request) -> Response:
        """200 while the process serves; calls no backend."""
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        """200 when every backend is healthy, else 503 naming the failing ones (not why:
        that is for /admin, which needs credentials)."""
        reports = await monitor.reports()
        failing = [name for name, report in reports.items() if not report.ok]
        if failing:
            detail = f"backends not healthy: {', '.join(failing)}"
            return JSONResponse({"detail": detail, "failing": failing}, status_code=503)
        return JSONResponse({"status": "ready", "backends": list(reports)})

    async def metrics_text(request: Request) -> Response:
        return Response(metrics.render(), headers={"content-type": metrics.content_type})

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_text, methods=["GET"]),
    ]
