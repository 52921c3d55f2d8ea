"""Bounding the memory that decoding uploads costs, and giving it back afterwards.

A small PNG can declare tens of millions of pixels: 190 KB of RGBA at 6300x6300 decodes to 160 MB
before it is reduced to the working size. The threadpool runs up to 40 requests at once, so without a
bound eight such uploads would need over a gigabyte at the same moment. Images whose header declares
more than BIG_PIXELS therefore decode a few at a time (DecodeGate); smaller ones, the usual case, never
wait. After each big decode the C allocator is asked to return its free pages to the system (glibc's
malloc_trim): every thread frees into its own malloc arena, and without the trim eight threads would
each keep a decoded image's worth of pages.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading

BIG_PIXELS = 4_000_000  # 16 MB as RGBA: above this an upload waits for a decode slot
DECODE_SLOTS = 2        # big decodes at once (about 200 MB each at the 50 MP limit)


class DecodeGate:
    """At most `slots` decodes of images over `big_pixels` at once; `decoding(pixels)` is the gate."""

    def __init__(self, slots: int = DECODE_SLOTS, big_pixels: int = BIG_PIXELS) -> None:
        self.big_pixels = big_pixels
        self._slots = threading.BoundedSemaphore(slots)

    @contextlib.contextmanager
    def decoding(self, pixels: int):
        if pixels <= self.big_pixels:
            yield
            return
        with self._slots:
            try:
                yield
            finally:
                # Every time: each thread frees into its own malloc arena, where the pages would stay.
                release_memory()


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to call
        return None


_TRIM = _malloc_trim()


def release_memory() -> bool:
    """Return the allocator's free memory to the system where the C library can (glibc); True if it did."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


DECODE_GATE = DecodeGate()  # one per process: memory is the process's
