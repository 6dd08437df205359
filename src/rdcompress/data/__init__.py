"""Real datasets in their canonical formats, as ``ImageDataset`` splits.

Datasets (``DATASETS``):

- ``digits``: scikit-learn's bundled 8x8 digits (no download). Pixels 0..16 are stored as uint8
  with ``scale = 16``, so the float view is exactly v / 16. Shape (N, 1, 8, 8), 10 classes.
- ``mnist``, ``fashion-mnist``: the canonical IDX files, gzip-compressed or not.
- ``cifar10``, ``cifar100``: the canonical python pickle batches (``cifar-10-batches-py/``,
  ``cifar-100-python/``, or the ``.tar.gz`` archives read directly); CIFAR-100 uses fine labels.
- ``cifar10-jpeg``, or any image folder ``ROOT/<split>/<class>/*.png|jpg`` given by path (or
  ``imagefolder:PATH``), as a directory or a ``.tar.gz``.

Splits (all deterministic; seeded stratified carve-outs use ``SPLIT_SEED`` and a splitmix64
hash, so they are the same on every machine):

- ``test``: the canonical test set (MNIST/Fashion 10,000; CIFAR 10,000; image folder ``test/``).
- ``val``: a fixed, class-stratified carve-out of the canonical train set: 5,000 images for
  MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100; 10% for image folders (or their own ``val/``
  folder when they have one); 10% also for files in a canonical format that hold fewer
  training images than the fixed count.
- ``train``: the canonical train set minus ``val``; ``trainval``: the whole canonical train set
  (plus an image folder's own ``val/``).
- ``digits`` has no canonical split: a seeded, stratified 60/20/20 train/val/test partition of
  the 1,797 images (1,079 / 359 / 359).

Files are searched in ``data_dir``, then ``$RDCOMPRESS_DATA_DIR``, then
``~/.cache/rdcompress/datasets`` (where downloads go), then ``/usr/share/datasets``. Missing
files are downloaded from their canonical home when allowed and verified by md5 (of the
decompressed content); otherwise a ``DatasetNotFoundError`` names the files and where to put
them. Truncated or corrupt files raise ``CorruptFileError`` (``ChecksumError`` for a canonical-
size file with the wrong md5).
"""

from rdcompress.data.dataset import ImageDataset
from rdcompress.data.idx import encode_idx, parse_idx
from rdcompress.data.loaders import load_dataset, load_digits
from rdcompress.data.paths import locate, search_roots
from rdcompress.data.registry import DATASETS, SPLIT_SEED, SPLITS, DatasetInfo

__all__ = [
    "DATASETS",
    "SPLITS",
    "SPLIT_SEED",
    "DatasetInfo",
    "ImageDataset",
    "encode_idx",
    "load_dataset",
    "load_digits",
    "locate",
    "parse_idx",
    "search_roots",
]
