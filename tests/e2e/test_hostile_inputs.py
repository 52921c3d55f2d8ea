"""Hostile inputs against the real CLI and server processes: no hang, no traceback, bounded memory."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from serve_process import serve

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
pytest.importorskip("uvicorn", reason="the 'serve' extra is not installed")


def _digit_png(side: int = 120, mode: str = "L") -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("L", (side, side), 255)
    ImageDraw.Draw(image).line([(side * .3, side * .2), (side * .7, side * .2), (side * .4, side * .8)], fill=0,
                               width=max(3, side // 15))
    buf = io.BytesIO()
    image.convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitlab", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("command", ["predict", "read"])
def test_device_and_named_pipe_are_refused_in_one_line_each(tmp_path, command):
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    good = tmp_path / "seven.png"
    good.write_bytes(_digit_png())
    done = _cli(command, "/dev/zero", str(pipe), str(good), timeout=90)  # a regression hangs: the timeout fails it
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert "/dev/zero is a character device, not a regular file" in lines[0]
    assert "named pipe (FIFO), not a regular file" in lines[1]
    assert str(good) in done.stdout  # the batch went on


def test_folder_listing_reports_what_it_cannot_read(tmp_path):
    folder = tmp_path / "digits"
    folder.mkdir()
    (folder / "seven.png").write_bytes(_digit_png())
    (folder / "notes.txt").write_text("not an image, not a problem")
    (folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(folder / "pipe.png")
    (folder / "album.png").mkdir()
    done = _cli("predict", str(folder))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    err = done.stderr
    assert "gone.png is a dangling symbolic link" in err
    assert "pipe.png is a named pipe (FIFO), not an image file" in err
    assert "album.png is a folder, not an image file (--recursive looks inside)" in err
    assert "notes.txt" not in err
    assert len(err.strip().splitlines()) == 3
    assert "seven.png: " in done.stdout


def test_an_unreadable_folder_is_one_line_and_the_batch_goes_on(tmp_path, monkeypatch):
    from digitlab.cli.predict import expand_inputs

    locked, fine = tmp_path / "locked", tmp_path / "fine"
    locked.mkdir()
    fine.mkdir()
    (fine / "a.png").write_bytes(_digit_png())
    real_scandir = os.scandir

    def scandir(path="."):
        # Root reads any folder, so chmod 000 cannot stand in for a permission error here.
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    for recursive in (False, True):
        files, problems = expand_inputs([str(locked), str(fine)], recursive=recursive)
        assert files == [str(fine / "a.png")]
        assert len(problems) == 1 and "cannot list the folder" in problems[0][1]
        assert "Permission denied" in problems[0][1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their permissions")
def test_an_unreadable_folder_on_disk(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        done = _cli("predict", str(locked))
    finally:
        locked.chmod(0o755)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "cannot list the folder" in done.stderr


def test_no_digit_found_is_said_once(tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    done = _cli("predict", str(blank))
    assert done.returncode == 0
    assert done.stdout.count("no digit found") == 1, done.stdout


def _vm(pid: int, name: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(name)


def _server_pid(port: str) -> int:
    # The server process is the one `serve` started: it listens on `port`.
    out = subprocess.run(["pgrep", "-f", f"digitlab serve .*--port {port}"], capture_output=True, text=True)
    return int(out.stdout.split()[0])


def test_big_transparent_pngs_keep_the_server_memory_bounded():
    from PIL import Image, ImageDraw

    big = Image.new("RGBA", (6300, 6300), (0, 0, 0, 0))  # 40 MP: 160 MB decoded, a 170 KB file
    ImageDraw.Draw(big).line([(1900, 1300), (4400, 1300), (2500, 5000)], fill=(0, 0, 0, 255), width=160)
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    data = buf.getvalue()
    del big
    with serve("--no-access-log", log_name="server-hostile.log") as base:
        pid = _server_pid(base.rsplit(":", 1)[1])
        idle = _vm(pid, "VmRSS")

        def upload(_):
            with httpx.Client(base_url=base, timeout=240) as client:
                return client.post("/api/predict", files={"file": ("big.png", data, "image/png")})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(upload, range(8)))
        peak = _vm(pid, "VmHWM")
    assert all(r.status_code == 200 for r in answers), answers[0].text
    assert {r.json()["digit"] for r in answers} == {7}
    # Unbounded, eight full-size decodes at once took the server to 3.9 GB; two slots of ~200 MB each.
    assert peak - idle < 700, (idle, peak)
