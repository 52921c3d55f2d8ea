"""examples/article.py, the article as a notebook: converted with jupytext and executed with nbmake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.integration
def test_the_article_notebook_runs_end_to_end(tmp_path, mnist):
    pytest.importorskip("jupytext")
    pytest.importorskip("nbmake")
    import jupytext

    notebook = tmp_path / "article.ipynb"
    jupytext.write(jupytext.read(ROOT / "examples" / "article.py"), notebook)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake",
                           "--nbmake-timeout=900", str(notebook)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
