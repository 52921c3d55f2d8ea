"""What decoding one image may cost, in one place for the CLI, the Recognizer and the server.

No imports: the CLI shows these in its --help without loading numpy or Pillow.
"""

from __future__ import annotations

# A 48 MP phone photo passes. Larger images are refused from their header, before decoding; smaller
# ones are reduced to DECODE_MAX_SIDE right after decoding, so their pixels cost memory only briefly.
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # a file on disk; the server's own body limit is smaller
DECODE_MAX_SIDE = 1024  # the preprocessing's working size (grey.WORK_SIZE): larger images gain nothing
