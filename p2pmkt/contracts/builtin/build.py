"""Rebuild the built-in indicator modules from their AssemblyScript sources.

Usage: ``python -m p2pmkt.contracts.builtin.build [--out DIR]`` (needs node and npm; installs
the pinned compiler with ``npm ci`` on first use). Running a node never needs this: the
compiled ``wasm/*.wasm`` files are committed, and ``tests/contracts/test_builtin.py``
rebuilds them and checks that the bytes are identical, so source and binary cannot drift.

All modules are compiled in one node process (the compiler's start-up, ~3 s, dominates a
single compile) with identical flags; the flags are part of the reproducibility contract.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from p2pmkt.contracts.builtin import BUILTIN_DIR, BUILTINS

__all__ = ["ASC_FLAGS", "build", "ensure_compiler"]

ASC_FLAGS = ("-O3", "--runtime", "stub", "--noAssert", "--converge")
"""Compiler flags for every built-in (and the SDK scaffold's default)."""

# Node script: compile every (source, output) pair given as JSON in argv[1] with asc.main.
_DRIVER = r"""
import asc from "assemblyscript/asc";
const [jobs, flags] = JSON.parse(process.argv[1]);
let failed = 0;
for (const [src, out] of jobs) {
  const { error, stderr } = await asc.main([src, ...flags, "--outFile", out]);
  if (error) { failed++; console.error(`${src}: ${error.message}\n${stderr.toString()}`); }
}
process.exit(failed ? 1 : 0);
"""


def ensure_compiler(directory: Path = BUILTIN_DIR) -> None:
    """Install the pinned AssemblyScript compiler into ``directory/node_modules`` if absent.

    Raises:
        FileNotFoundError: node or npm is not on PATH.
        subprocess.CalledProcessError: npm failed (e.g. no registry access).
    """
    if (directory / "node_modules" / "assemblyscript" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm is not on PATH; install Node.js 20+ to rebuild contracts")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=directory,
        check=True,
        capture_output=True,
    )


def build(out_dir: Path, *, directory: Path = BUILTIN_DIR) -> dict[str, Path]:
    """Compile every built-in into ``out_dir``; return ``{name: path of the .wasm}``.

    Raises:
        subprocess.CalledProcessError: the compiler failed (its messages are in ``stderr``).
    """
    ensure_compiler(directory)
    node = shutil.which("node")
    if node is None:
        raise FileNotFoundError("node is not on PATH; install Node.js 20+ to rebuild contracts")
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {name: (out_dir / f"{name}.wasm").resolve() for name in BUILTINS}
    jobs = [[f"assembly/{name}.ts", str(path)] for name, path in outputs.items()]
    subprocess.run(
        [node, "--input-type=module", "-e", _DRIVER, json.dumps([jobs, list(ASC_FLAGS)])],
        cwd=directory,
        check=True,
        capture_output=True,
        text=True,
    )
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUILTIN_DIR / "wasm")
    args = parser.parse_args()
    for name, path in build(args.out).items():
        print(f"{name}: {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
