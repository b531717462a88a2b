"""Regenerate the Python code for protos/metering/v1/*.proto into metering/v1/.

Run: python protos/generate.py [OUT_DIR]   (OUT_DIR defaults to the repository root)
The generated files are committed; tests/test_protos.py fails when they are stale.
"""

from __future__ import annotations

import pathlib
import sys

import grpc_tools  # type: ignore[import-untyped]  # grpcio-tools ships no stubs or py.typed
from grpc_tools import protoc

PROTOS = pathlib.Path(__file__).resolve().parent
ROOT = PROTOS.parent


def _include_dirs() -> list[str]:
    from google.api import annotations_pb2  # googleapis-common-protos ships the .proto sources

    return [
        str(PROTOS),
        str(pathlib.Path(grpc_tools.__file__).parent / "_proto"),
        str(pathlib.Path(annotations_pb2.__file__).parent.parent.parent),
    ]


def generate(out_dir: pathlib.Path) -> list[pathlib.Path]:
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "metering" / "v1").glob("*.proto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", *(f"-I{d}" for d in _include_dirs())]
    args += [f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *sources]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    package = out_dir / "metering" / "v1"  # metering/ itself also holds hand-written shared helpers
    docstring = '"""Generated from protos/metering/v1 by protos/generate.py. Do not edit."""\n'
    (package / "__init__.py").write_text(docstring)
    return sorted(p for p in package.rglob("*") if p.is_file() and p.suffix in {".py", ".pyi"})


if __name__ == "__main__":
    written = generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
    print(f"generated {len(written)} files")
