"""The committed Python code in metering/ matches what protos/generate.py makes from the
.proto files today (fails when someone edits a .proto and forgets to regenerate)."""

from __future__ import annotations

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _generate_module():
    spec = importlib.util.spec_from_file_location("protos_generate", ROOT / "protos" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current(tmp_path):
    written = _generate_module().generate(tmp_path)
    generated = {p.relative_to(tmp_path): p.read_bytes() for p in written}
    committed = {
        p.relative_to(ROOT): p.read_bytes()
        for p in (ROOT / "metering" / "v1").rglob("*")
        if p.is_file() and p.suffix in {".py", ".pyi"}
    }
    assert generated, "generate() wrote nothing"
    assert {pathlib.Path("metering/v1/event_pb2.py"), pathlib.Path("metering/v1/ingest_pb2_grpc.py")} <= set(generated)
    assert sorted(generated) == sorted(committed), "files differ: run python protos/generate.py"
    stale = [str(path) for path in generated if generated[path] != committed[path]]
    assert not stale, f"stale generated files {stale}: run python protos/generate.py"
