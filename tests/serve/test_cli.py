"""`digitlab serve` on the command line: cheap to import, clear one-line errors, settings that
travel to worker processes intact."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from digitlab.errors import ConfigError
from digitlab.serve.settings import ServeSettings


def _digitlab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitlab", *args], capture_output=True, text=True, timeout=timeout)


def test_the_serve_command_imports_nothing_heavy():
    code = ("import sys, digitlab.cli.main as m; m.build_parser(); import digitlab.serve; "
            "print(sorted(k for k in ('torch', 'fastapi', 'uvicorn', 'starlette', 'PIL') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_help_lists_the_options():
    out = _digitlab("serve", "--help")
    assert out.returncode == 0
    for flag in ("--model", "--host", "--port", "--workers", "--max-bytes", "--max-pixels", "--min-confidence"):
        assert flag in out.stdout


def test_a_missing_model_is_one_line_on_stderr(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = _digitlab("serve", "--model", str(tmp_path / "no-such-run"), "--port", str(port))
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitlab serve: error:"), out.stderr
    assert "Traceback" not in out.stderr


def test_a_busy_port_is_one_line_on_stderr():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = _digitlab("serve", "--port", str(port))
    assert out.returncode == 2
    assert "cannot listen on 127.0.0.1:" in out.stderr and "--port" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, words", [
    (["--workers", "0"], "--workers"),
    (["--port", "70000"], "--port"),
    (["--threads", "0"], "threads"),
])
def test_bad_options_are_config_errors(args, words):
    out = _digitlab("serve", *args)
    assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr


def test_settings_round_trip_through_the_environment():
    settings = ServeSettings(model="runs/cnn", runtime="onnx", threads=2, max_bytes=5000, max_pixels=10**6,
                             min_confidence=0.5)
    assert ServeSettings.from_env(settings.to_env()) == settings
    assert ServeSettings.from_env({}) == ServeSettings()  # the shipped model, default limits


def test_bad_environment_values_are_config_errors():
    with pytest.raises(ConfigError, match="DIGITLAB_SERVE_MAX_BYTES"):
        ServeSettings.from_env({"DIGITLAB_SERVE_MAX_BYTES": "ten"})
    with pytest.raises(ConfigError, match="runtime"):
        ServeSettings(runtime="tensorflow")
