"""The README's "Python SDK" examples run as written (target and key substituted)."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def sdk_examples() -> list[str]:
    text = README.read_text()
    section = text[text.index("\n## Python SDK") + 1:].split("\n## ")[0]  # up to the next top section
    return re.findall(r"```python\n(.*?)```", section, re.S)


async def test_readme_examples_run(target, new_org):
    blocks = sdk_examples()
    assert len(blocks) == 4
    org = await new_org()
    for block in blocks:
        code = block.replace('"127.0.0.1:50051"', repr(target)).replace('"mk_..."', repr(org.admin_key))
        namespace: dict[str, object] = {}
        if "async with" in code:
            exec("async def _example():\n" + textwrap.indent(code, "    "), namespace)
            await namespace["_example"]()  # type: ignore[operator]
        else:
            await asyncio.to_thread(exec, code, namespace)
        if "request_details" in namespace:
            assert namespace["request_details"].request_id == "123"  # type: ignore[attr-defined]
        if "usage_data" in namespace:
            assert namespace["usage_data"].client_id == "my_app"  # type: ignore[attr-defined]
