"""The README's Quick start, run line by line as a user would paste it into a shell."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start() -> list:
    """The commands of the README's Quick start block (continuation lines joined)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.replace("\\\n", " ").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_quick_start_runs_as_written(trained, tmp_path):
    lines = quick_start()
    # the default run takes ten minutes: the session's short run stands where it would land
    assert lines[0].split("#")[0].strip() == "python -m mets_fast.train"
    shutil.copytree(trained, tmp_path / "runs" / "20260101-000000")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + "\n".join(lines[1:])],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert (tmp_path / "results" / "zeroshot.json").is_file()
    assert (tmp_path / "indexes" / "reports" / "index.json").is_file()
    assert "linear probe" in out
    for stem in ("sinus_rhythm", "atrial_fibrillation", "sinus_bradycardia"):
        # zero-shot ranks the three rhythm classes for each example, retrieval lists 5 reports
        assert out.count(f"/{stem}") == 2
    assert out.count("   5. ") == 3
