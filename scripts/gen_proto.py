"""Regenerate the Python stubs in generated/ from the contracts in proto/.

One command (`python scripts/gen_proto.py`) so the stubs never drift from the
contracts; `--check` regenerates into a temporary folder and fails when the
committed stubs differ (the test suite runs it).

Beside the stubs it writes `peromesh/descriptors.binpb`, the contracts as a
FileDescriptorSet WITH their comments (source_code_info): the Python stubs strip
comments, so server reflection (server/rpc/reflection.py) reads them from there
and `grpcurl describe` shows what the .proto files say.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
GENERATED = ROOT / "generated"
DESCRIPTOR_SET = "peromesh/descriptors.binpb"  # read by server/rpc/reflection.py
INIT_TEXT = '"""Generated protobuf/gRPC stubs (scripts/gen_proto.py); do not edit."""\n'


def _protoc(out: Path) -> None:
    import grpc_tools  # local import: a dev dependency

    include = Path(grpc_tools.__file__).parent / "_proto"
    files = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    bin_dir = Path(sys.executable).parent
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}", f"-I{include}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out}", f"--mypy_grpc_out={out}",
        "--include_source_info", "--include_imports", f"--descriptor_set_out={out / DESCRIPTOR_SET}", *files,
    ]
    (out / "peromesh").mkdir(exist_ok=True)
    subprocess.run(cmd, check=True, cwd=PROTO)
    for pkg in [out / "peromesh", *(p for p in (out / "peromesh").rglob("*") if p.is_dir())]:
        if pkg.name != "__pycache__":
            (pkg / "__init__.py").write_text(INIT_TEXT)
            (pkg / "py.typed").write_text("")


def _differences(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    out = [f"only in {cmp.left}: {n}" for n in cmp.left_only]
    out += [f"only in {cmp.right}: {n}" for n in cmp.right_only]
    out += [f"differs: {Path(cmp.left) / n}" for n in cmp.diff_files]
    for sub in cmp.common_dirs:
        out += _differences(a / sub, b / sub)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if generated/ is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _protoc(out)
        if args.check:
            diffs = _differences(out / "peromesh", GENERATED / "peromesh")
            for line in diffs:
                print(line)
            if diffs:
                print("generated/ is stale: run python scripts/gen_proto.py")
            return 1 if diffs else 0
        shutil.rmtree(GENERATED / "peromesh", ignore_errors=True)
        shutil.copytree(out / "peromesh", GENERATED / "peromesh")
    print(f"generated stubs in {GENERATED / 'peromesh'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
