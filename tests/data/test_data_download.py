"""Downloads against a real HTTP server on 127.0.0.1 serving tiny IDX .gz files the tests make."""

from __future__ import annotations

import gzip
import shutil

import pytest
from datalayer_helpers import OFFICIAL_NAMES, listing, spec_for, tiny_arrays, write_tiny_folder

from digitlab.data.download import fetch
from digitlab.data.idx import content_sha256, encode_idx
from digitlab.data.sources import ROLES, DatasetSpec, FileSpec
from digitlab.errors import DownloadError


@pytest.fixture
def served(mirror_server):
    """Good files under /good/; (spec matching them, base URL, server, www root)."""
    root, base, server = mirror_server
    arrays = write_tiny_folder(root / "good")
    return spec_for(arrays), base, server, root


def with_bad_checksum(spec: DatasetSpec, role: str) -> DatasetSpec:
    files = dict(spec.files)
    files[role] = FileSpec(files[role].name, sha256="0" * 64)
    return DatasetSpec(name=spec.name, files=files, mirrors=spec.mirrors, classes=spec.classes,
                       num_classes=spec.num_classes)


def test_good_download_verifies_every_file(served, tmp_path, capsys):
    spec, base, server, _ = served
    dest = tmp_path / "cache" / "tiny"

    assert fetch(spec, dest, mirrors=[f"{base}/good/"], progress=True) == dest

    for role in ROLES:
        path = dest / spec.files[role].name
        assert content_sha256(path) == spec.files[role].sha256
    assert listing(dest) == sorted(spec.files[role].name for role in ROLES)  # no temp files
    # Not a terminal: one plain line per file instead of a bar.
    assert capsys.readouterr().err.count("downloaded ") == 4


def test_files_already_verified_are_not_downloaded_again(served, tmp_path, dead_url):
    spec, base, server, _ = served
    dest = tmp_path / "dest"
    fetch(spec, dest, mirrors=[f"{base}/good/"], progress=False)
    hits = len(server.hits)
    # Every mirror dead now: succeeds only because the four files on disk verify.
    assert fetch(spec, dest, mirrors=[dead_url], progress=False) == dest
    assert len(server.hits) == hits


def test_corrupt_file_on_disk_is_replaced(served, tmp_path):
    spec, base, _, _ = served
    dest = tmp_path / "dest"
    fetch(spec, dest, mirrors=[f"{base}/good/"], progress=False)
    broken = dest / spec.files["test_labels"].name
    broken.write_bytes(gzip.compress(b"garbage"))
    fetch(spec, dest, mirrors=[f"{base}/good/"], progress=False)
    assert content_sha256(broken) == spec.files["test_labels"].sha256


def test_bad_checksum_leaves_nothing_in_the_cache(served, tmp_path):
    spec, base, _, _ = served
    bad = with_bad_checksum(spec, "train_images")  # the first file fetched
    dest = tmp_path / "cache" / "tiny"
    with pytest.raises(DownloadError) as info:
        fetch(bad, dest, mirrors=[f"{base}/good/"], progress=False)
    message = str(info.value)
    assert "checksum mismatch" in message and f"{base}/good/train-images-idx3-ubyte.gz" in message
    assert listing(dest) == []  # neither the file nor a temporary file


def test_truncated_and_html_answers_are_rejected_and_the_next_mirror_used(served, tmp_path):
    spec, base, server, root = served
    (root / "cut").mkdir()
    (root / "html").mkdir()
    for role in ROLES:
        name = spec.files[role].name
        data = (root / "good" / name).read_bytes()
        (root / "cut" / name).write_bytes(data[: len(data) // 2])
        (root / "html" / name).write_bytes(b"<!doctype html><html><body>Moved</body></html>")
    dest = tmp_path / "dest"

    fetch(spec, dest, mirrors=[f"{base}/cut/", f"{base}/html/", f"{base}/good/"], progress=False)

    assert listing(dest) == sorted(spec.files[role].name for role in ROLES)
    assert [h for h in server.hits if h.endswith("t10k-labels-idx1-ubyte.gz")] == [
        "/cut/t10k-labels-idx1-ubyte.gz", "/html/t10k-labels-idx1-ubyte.gz", "/good/t10k-labels-idx1-ubyte.gz"]


def test_dead_first_mirror_falls_back(served, tmp_path, dead_url):
    spec, base, _, _ = served
    dest = tmp_path / "dest"
    fetch(spec, dest, mirrors=[dead_url, f"{base}/missing/", f"{base}/good/"], timeout=5, progress=False)
    for role in ROLES:
        assert content_sha256(dest / spec.files[role].name) == spec.files[role].sha256


def test_a_transient_error_is_retried_on_the_same_mirror(served, tmp_path):
    spec, base, server, _ = served
    fetch(spec, tmp_path / "dest", mirrors=[f"{base}/flaky/"], retries=1, progress=False)
    name = spec.files["train_images"].name
    assert server.hits.count(f"/flaky/{name}") == 2  # 503 first, then the file


def test_every_mirror_dead_gives_one_combined_message(served, tmp_path, dead_url):
    spec, base, server, _ = served
    server.slow_seconds = 1.5
    mirrors = [dead_url, f"{base}/missing/", f"{base}/slow/"]
    dest = tmp_path / "cache" / "tiny"
    with pytest.raises(DownloadError) as info:
        fetch(spec, dest, mirrors=mirrors, timeout=0.3, retries=1, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert f"{dead_url}train-images-idx3-ubyte.gz -> connection failed" in message
    assert f"{base}/missing/train-images-idx3-ubyte.gz -> HTTP 404" in message
    assert f"{base}/slow/train-images-idx3-ubyte.gz -> timed out after 0.3 s" in message
    assert "(after 2 tries)" in message  # connection errors and timeouts are retried, a 404 is not
    assert server.hits.count("/missing/train-images-idx3-ubyte.gz") == 1
    assert "--data-dir" in message and "DIGITLAB_DATA_DIR" in message
    assert listing(dest) == []


def test_spec_mirrors_are_the_default(mirror_server, tmp_path):
    root, base, _ = mirror_server
    arrays = tiny_arrays(n_train=4, n_test=2, seed=3)
    write_tiny_folder(root / "m2", arrays)
    spec = spec_for(arrays, mirrors=(f"{base}/nothing-here", f"{base}/m2"))  # trailing '/' added by the spec
    dest = fetch(spec, tmp_path / "dest", progress=False)
    assert content_sha256(dest / "t10k-images-idx3-ubyte.gz") == spec.files["test_images"].sha256


def test_raw_file_already_present_counts(served, tmp_path, dead_url):
    spec, _, _, root = served
    dest = tmp_path / "dest"
    dest.mkdir()
    for role in ROLES:  # the user decompressed the files: raw names, no .gz
        with gzip.open(root / "good" / spec.files[role].name) as src, open(dest / OFFICIAL_NAMES[role], "wb") as out:
            shutil.copyfileobj(src, out)
    assert fetch(spec, dest, mirrors=[dead_url], progress=False) == dest
    assert (dest / OFFICIAL_NAMES["train_images"]).read_bytes()[:4] == encode_idx(tiny_arrays()["train_images"])[:4]
