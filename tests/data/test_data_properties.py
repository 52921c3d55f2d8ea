"""Property tests: arbitrary bytes into the IDX and npz readers give a result or DataError, nothing else.

Bounded and derandomized, so the suite stays fast and its outcome does not depend on the run.
"""

from __future__ import annotations

import pytest
import gzip
import io
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digitlab.data.idx import encode_idx, read_idx, read_images, read_labels
from digitlab.data.npz import read_npz
from digitlab.errors import DataError

pytestmark = pytest.mark.usefixtures("ieee_floats")

SETTINGS = settings(max_examples=150, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _header(code: int, dims: list[int]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


idx_like = st.one_of(
    st.binary(max_size=300),
    # a plausible header followed by arbitrary bytes: exercises the size and dtype checks
    st.builds(lambda code, dims, body: _header(code, dims) + body,
              st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]),
              st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 30), min_size=0, max_size=4),
              st.binary(max_size=200)),
)


@SETTINGS
@given(data=idx_like, compress=st.booleans())
def test_idx_readers_answer_with_an_array_or_data_error(data, compress):
    raw = gzip.compress(data, compresslevel=1) if compress else data
    for reader in (read_idx, read_images, read_labels):
        try:
            result = reader(raw)
        except DataError as exc:
            assert "\n" not in str(exc)
        else:
            assert isinstance(result, np.ndarray)


@SETTINGS
@given(data=st.binary(max_size=300))
def test_truncated_or_flipped_gzip_gives_data_error(data):
    good = gzip.compress(encode_idx(np.arange(20, dtype=np.uint8) % 10))
    cut = good[: len(data) % len(good)] + data[:8]
    try:
        read_labels(cut)
    except DataError:
        pass


def _zip(members: dict[str, bytes], method: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


member_bytes = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda n, tail: _npy(np.zeros((n, 28, 28), np.uint8))[: 128 + tail],
              st.integers(0, 3), st.integers(0, 3000)),
    st.builds(lambda n: _npy(np.zeros(n, np.uint8)), st.integers(0, 5)),
)
npz_like = st.one_of(
    st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b),
    st.builds(_zip, st.dictionaries(st.sampled_from(["x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy",
                                                     "other.npy", "x_train"]), member_bytes, max_size=5),
              st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])),
)


@SETTINGS
@given(content=npz_like, flip=st.integers(0, 10_000))
def test_npz_reader_answers_with_arrays_or_data_error(tmp_path, content, flip):
    if content and flip % 3 == 0:  # also a corrupted byte somewhere
        at = flip % len(content)
        content = content[:at] + bytes([content[at] ^ 0x5A]) + content[at + 1:]
    path = tmp_path / "mnist.npz"
    path.write_bytes(content)
    try:
        arrays = read_npz(path, max_items=(60000, 10000))
    except DataError as exc:
        assert "\n" not in str(exc)
    else:
        assert set(arrays) == {"x_train", "y_train", "x_test", "y_test"}
