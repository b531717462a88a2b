"""docs/metrics.md lists exactly the metrics the processes define, and the Grafana dashboard
(docs/grafana/metering.json) asks only for metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from gateway.http.metrics import REGISTRY as GATEWAY
from server.core.metrics import REGISTRY as SERVER
from worker.metrics import REGISTRY as WORKER

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def defined(registry: CollectorRegistry) -> set[str]:
    """The metering_* families of `registry`, by the name they are exposed under."""
    return {f.name + ("_total" if f.type == "counter" else "") for f in registry.collect()
            if f.name.startswith("metering_")}


def base(name: str) -> str:
    for suffix in SUFFIXES[1:]:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_the_page_lists_every_metric_and_only_those():
    rows = re.findall(r"^\| `(metering_\w+)` \| (\w+) \|", (ROOT / "docs/metrics.md").read_text(), re.M)
    documented = {name for name, _ in rows}
    assert documented == defined(SERVER) | defined(GATEWAY) | defined(WORKER)
    types = {f.name: f.type for registry in (SERVER, GATEWAY, WORKER) for f in registry.collect()}
    assert {name: kind for name, kind in rows} == {
        name: types[name.removesuffix("_total")] for name in documented}


def test_the_dashboard_asks_for_existing_metrics():
    dashboard = json.loads((ROOT / "docs/grafana/metering.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {base(name) for expr in exprs for name in re.findall(r"\bmetering_\w+", expr)}
    exposed = {base(name) for name in defined(SERVER) | defined(GATEWAY) | defined(WORKER)}
    assert used and used <= exposed, used - exposed
    assert exposed <= used, exposed - used  # every metric has a panel
