"""Datasets declared as data: file names, checksums, mirrors, classes, license.

A dataset is one `DatasetSpec`; a variant (Fashion-MNIST) differs only in its data, never in code.
Checksums are the SHA-256 of the DECOMPRESSED IDX content, so the same value holds for the official
.gz, a recompressed .gz and the raw file. The .gz MD5 is the official archive's, kept for reference
only: a recompressed copy (such as the shared MNIST train-images) has another MD5 and is still valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from digitlab.errors import ConfigError

# The four files of every IDX dataset, in the order they are checked and reported.
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class FileSpec:
    """One data file.

    name:   the official file name (usually ending in .gz); the raw name without .gz is accepted too.
    sha256: SHA-256 of the decompressed content (hex, lower case).
    md5:    MD5 of the official .gz, for reference (None when unknown).
    count:  number of items (images or labels) the file holds, checked by `digitlab data verify`.
    """

    name: str
    sha256: str
    md5: str | None = None
    count: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its four IDX files, where to download them, and what the labels mean.

    files:   role (see ROLES) -> FileSpec.
    mirrors: base URLs tried in order; a file's URL is mirror + file name.
    npz:     optional Keras-style single file (x_train, y_train, x_test, y_test) that a data folder
             may hold instead of the IDX files; its sha256 is of the file itself.
    """

    name: str
    files: Mapping[str, FileSpec]
    mirrors: tuple[str, ...]
    classes: tuple[str, ...]
    num_classes: int
    license: str = ""
    citation: str = ""
    npz: FileSpec | None = None
    homepage: str = ""
    image_shape: tuple[int, int] = (28, 28)
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        missing = [role for role in ROLES if role not in self.files]
        if missing:
            raise ConfigError(f"dataset spec {self.name!r} lacks files for {', '.join(missing)}")
        if self.num_classes != len(self.classes):
            raise ConfigError(
                f"dataset spec {self.name!r}: num_classes={self.num_classes} but {len(self.classes)} class names"
            )
        # Read-only views: a spec is shared, global data.
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))
        object.__setattr__(self, "mirrors", tuple(m if m.endswith("/") else m + "/" for m in self.mirrors))

    def urls(self, role: str, mirrors: tuple[str, ...] | None = None) -> list[str]:
        """The download URLs of one file, one per mirror, in order."""
        bases = self.mirrors if mirrors is None else tuple(m if m.endswith("/") else m + "/" for m in mirrors)
        return [base + self.files[role].name for base in bases]


MNIST = DatasetSpec(
    name="mnist",
    files={
        "train_images": FileSpec(
            "train-images-idx3-ubyte.gz",
            sha256="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
            count=60000,
        ),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte.gz",
            sha256="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            md5="d53e105ee54ea40749a09fcbcd1e9432",
            count=60000,
        ),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte.gz",
            sha256="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            md5="9fb629c4189551a2d022fa330f9573f3",
            count=10000,
        ),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte.gz",
            sha256="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            md5="ec29112dd5afa0611ce80d1b7f02629c",
            count=10000,
        ),
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    classes=tuple(str(d) for d in range(10)),
    num_classes=10,
    license="Creative Commons Attribution-Share Alike 3.0",
    citation="Y. LeCun, C. Cortes, C. J. C. Burges. The MNIST database of handwritten digits.",
    npz=FileSpec(
        "mnist.npz", sha256="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    ),
    homepage="http://yann.lecun.com/exdb/mnist/",
    description="handwritten digits 0-9, 28x28 grey levels (0 = background, 255 = ink)",
)

# SHA-256 of the decompressed files computed from the Debian package's copy
# (/usr/share/datasets/fashion-mnist); MD5s are the official archives' (zalandoresearch/fashion-mnist).
FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    files={
        "train_images": FileSpec(
            "train-images-idx3-ubyte.gz",
            sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            count=60000,
        ),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte.gz",
            sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            md5="25c81989df183df01b3e8a0aad5dffbe",
            count=60000,
        ),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte.gz",
            sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            md5="bef4ecab320f06d8554ea6380940ec79",
            count=10000,
        ),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte.gz",
            sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            md5="bb300cfdad3c16e7a12a480ee83cd310",
            count=10000,
        ),
    },
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    classes=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    num_classes=10,
    license="MIT",
    citation="H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a Novel Image Dataset for Benchmarking "
    "Machine Learning Algorithms. arXiv:1708.07747, 2017.",
    npz=None,
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    description="Zalando article images in 10 classes, 28x28 grey levels (0 = background)",
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}


def get_spec(name: str) -> DatasetSpec:
    """The spec of a dataset by name (case-insensitive, '_' and '-' alike), or ConfigError."""
    key = str(name).strip().lower().replace("_", "-")
    spec = DATASETS.get(key)
    if spec is None:
        raise ConfigError(f"unknown dataset {name!r}: choose one of {', '.join(sorted(DATASETS))}")
    return spec
