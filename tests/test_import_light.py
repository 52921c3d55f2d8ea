"""`import digitlab` and `digitlab --help` must not import torch (so they start fast)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "matplotlib", "sklearn", "fastapi", "ray", "onnxruntime", "PIL")


def _imported_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_digitlab_is_light():
    assert _imported_after("import digitlab") == set()


def test_help_is_light():
    code = (
        "import contextlib, io\nfrom digitlab.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    main(['--help']) if False else None\n"
        "from digitlab.cli.main import build_parser\nbuild_parser().format_help()"
    )
    assert _imported_after(code) == set()
    out = subprocess.run([sys.executable, "-m", "digitlab", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout


def test_lazy_api_resolves():
    import digitlab

    assert callable(digitlab.build_model) and callable(digitlab.fit) and callable(digitlab.load_model)

