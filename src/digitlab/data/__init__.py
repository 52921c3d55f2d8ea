"""The MNIST-family data layer.

sources (datasets as data: files, checksums, mirrors), idx (strict IDX parsing), npz (Keras's
mnist.npz layout), download (pooch + mirror fallback + decompressed SHA-256), locate (where a dataset's
files are: --data-dir, $DIGITLAB_DATA_DIR, the cache, a download), dataset (`load_dataset` -> `Dataset`),
describe (the statistics the article prints).

Kept import-light on purpose: importing this package imports nothing heavy.
"""
