"""The official openai Node SDK, unchanged, against the gateway served by uvicorn on loopback: every
usage endpoint (decisions included) and costs, each without group_by, with every group_by value
alone, and with all of them and every filter, page after page (one bucket a page), hourly too; every
page it reads must equal the Python SDK's page for the same call, number for number.

The SDK is installed at test time (`npm ci`) from tests/gateway/node/package.json and
package-lock.json into a temporary directory of the session; the test is skipped only when node or
npm is missing. The script it runs: tests/gateway/node/read_usage.mjs."""

import asyncio
import json
import pathlib
import shutil
import subprocess
from typing import Any

import openai
import pytest

from tests.gateway.dialects.test_openai_schemas import (
    COSTS,
    END,
    PATHS,
    START,
    filters,
    group_by_values,
    parameters,
    record_usage,
)

NODE = pathlib.Path(__file__).resolve().parent.parent / "node"
pytestmark = pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")), reason="node or npm is missing")


@pytest.fixture(scope="module")
def node_sdk(tmp_path_factory) -> pathlib.Path:
    """A directory with the Node SDK of package-lock.json installed and the script beside it."""
    where = tmp_path_factory.mktemp("openai-node")
    for name in ("package.json", "package-lock.json", "read_usage.mjs"):
        shutil.copy(NODE / name, where / name)
    done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=where,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return where


def calls(values: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Every endpoint: ungrouped; by each group_by value; by all of them with every filter (and
    batch=false where it is a parameter); usage endpoints by the hour too."""
    found = []
    for path in sorted(PATHS):
        name = "costs" if path == COSTS else path.rsplit("/", 1)[1]
        base: dict[str, Any] = {"start_time": START, "end_time": END, "limit": 1}
        keys = group_by_values(path)
        everything = {**base, "group_by": keys, **filters(path, values)}
        if any(p["name"] == "batch" for p in parameters(path)):
            everything["batch"] = False
        found += [{"name": name, "params": base}, *({"name": name, "params": {**base, "group_by": [k]}} for k in keys),
                  {"name": name, "params": everything}]
        if path != COSTS:
            found.append({"name": name, "params": {**base, "bucket_width": "1h", "limit": 24, "group_by": keys[:1]}})
    return found


async def python_pages(sdk: openai.OpenAI, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    method = getattr(sdk.admin.organization.usage, name)
    pages = [await asyncio.to_thread(method, **params)]
    while pages[-1].has_more:
        pages.append(await asyncio.to_thread(method, **params, page=pages[-1].next_page))
    return [p.to_dict() for p in pages]


async def test_the_node_sdk_reads_what_the_python_sdk_reads(live_gateway, node_sdk, stubs, pstubs):
    key, values = await record_usage(stubs, pstubs, "node")
    todo = calls(values)
    proc = await asyncio.create_subprocess_exec(
        "node", str(node_sdk / "read_usage.mjs"), cwd=node_sdk, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    request = {"base_url": f"{live_gateway}/v1", "key": key, "calls": todo}
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(request).encode()), timeout=300)
    assert proc.returncode == 0, err.decode()
    node = json.loads(out)
    # The Node SDK's own method reads every endpoint but decisions (openai 7.59.0 has none: read with its
    # client.get); the Python SDK has one for each.
    camel = {c["name"]: "".join([c["name"].split("_")[0], *(w.title() for w in c["name"].split("_")[1:])])
             for c in todo}
    assert {n for n, m in camel.items() if m not in node["methods"]} <= {"decisions"}
    with openai.OpenAI(admin_api_key=key, base_url=f"{live_gateway}/v1", max_retries=0) as sdk:
        results = 0
        for call, node_pages in zip(todo, node["results"], strict=True):
            pages = await python_pages(sdk, call["name"], call["params"])
            assert node_pages == pages, call
            assert len(pages) > 1, call  # one bucket a page: both SDKs followed next_page
            results += sum(len(b["results"]) for p in pages for b in p["data"])
    assert len(todo) > 80 and results > 4 * len(todo)  # real numbers, not empty pages
