"""The dataset registry: one ``DatasetInfo`` per named dataset, with its canonical files.

Checksums are md5 of the *decompressed* content (IDX files) or of the pickled batch files
(CIFAR), because mirrors and Debian re-make the gzip wrappers: a re-gzipped file whose content is
canonical is accepted. ``canonical_sizes`` gives the decompressed byte count (IDX) or the number
of rows (CIFAR batches): a checksum is enforced only when the size is the canonical one, so a
user's own small file in the same format is read (structure-checked) but not md5-checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"

IDX_FILES = {
    # role -> canonical file name (without .gz; the .gz variant is accepted too)
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "test-images": "t10k-images-idx3-ubyte",
    "test-labels": "t10k-labels-idx1-ubyte",
}
IDX_SIZES = {  # decompressed bytes: header + payload
    "train-images-idx3-ubyte": 16 + 60000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60000,
    "t10k-images-idx3-ubyte": 16 + 10000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10000,
}

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class DatasetInfo:
    """What a named dataset is and where its canonical files come from."""

    name: str
    description: str
    format: str  # "sklearn" | "idx" | "cifar-pickle" | "imagefolder"
    input_shape: tuple[int, int, int]  # (C, H, W)
    classes: tuple[str, ...]
    split_sizes: dict[str, int]  # canonical sizes: {"train": ..., "test": ...}
    val_count: int | None = None  # fixed carve-out of the canonical train split
    val_fraction: float | None = None  # used when val_count is None
    files: tuple[str, ...] = ()  # required file names (IDX: without .gz) or batch names
    subdirs: tuple[str, ...] = ()  # extra folders, relative to a root, that may hold the files
    archive: str | None = None  # canonical archive name (CIFAR .tar.gz, cifar10-jpeg.tar.gz)
    archive_dir: str | None = None  # folder inside the archive holding the files
    urls: tuple[str, ...] = ()  # base URLs tried in order; file (or archive) name is appended
    md5: dict[str, str] = field(default_factory=dict)  # file -> md5 of decompressed content
    gz_md5: dict[str, str] = field(default_factory=dict)  # file.gz -> md5 of canonical .gz
    archive_md5: str | None = None
    canonical_sizes: dict[str, int] = field(default_factory=dict)
    install_hint: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name, "description": self.description, "format": self.format,
            "input_shape": list(self.input_shape), "num_classes": len(self.classes),
            "split_sizes": dict(self.split_sizes), "files": list(self.files),
            "urls": list(self.urls),
        }


def _idx_info(name: str, description: str, classes, urls, md5, gz_md5, subdirs, hint=""):
    return DatasetInfo(
        name=name, description=description, format="idx", input_shape=(1, 28, 28),
        classes=tuple(classes), split_sizes={"train": 60000, "test": 10000}, val_count=5000,
        files=tuple(IDX_FILES.values()), subdirs=subdirs, urls=urls, md5=md5, gz_md5=gz_md5,
        canonical_sizes=dict(IDX_SIZES), install_hint=hint,
    )


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo(
        name="digits", description="scikit-learn's bundled 8x8 handwritten digits (1,797 images)",
        format="sklearn", input_shape=(1, 8, 8), classes=tuple(str(d) for d in range(10)),
        split_sizes={"all": 1797},
    ),
    "mnist": _idx_info(
        "mnist", "MNIST handwritten digits, IDX files (gzip or raw)",
        [str(d) for d in range(10)], MNIST_URLS,
        md5={
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        gz_md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        subdirs=("MNIST/raw",),
    ),
    "fashion-mnist": _idx_info(
        "fashion-mnist", "Fashion-MNIST (Zalando), IDX files (gzip or raw)",
        FASHION_CLASSES, FASHION_URLS,
        # Decompressed md5s, measured on Debian's dataset-fashion-mnist (re-gzipped upstream data).
        md5={
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        gz_md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        subdirs=("FashionMNIST/raw",),
        hint="on Debian/Ubuntu: apt-get install dataset-fashion-mnist "
        "(puts them in /usr/share/datasets/fashion-mnist/)",
    ),
    "cifar10": DatasetInfo(
        name="cifar10", description="CIFAR-10, canonical python pickle batches",
        format="cifar-pickle", input_shape=(3, 32, 32), classes=CIFAR10_CLASSES,
        split_sizes={"train": 50000, "test": 10000}, val_count=5000,
        files=("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch", "batches.meta"),
        subdirs=("cifar-10-batches-py",), archive="cifar-10-python.tar.gz",
        archive_dir="cifar-10-batches-py", urls=(CIFAR_URL,),
        md5={
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
            "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
        },
        archive_md5="c58f30108f718f92721af3b95e74349a",
        canonical_sizes={f"data_batch_{i}": 10000 for i in range(1, 6)} | {"test_batch": 10000},
    ),
    "cifar100": DatasetInfo(
        name="cifar100", description="CIFAR-100 (fine labels), canonical python pickles",
        format="cifar-pickle", input_shape=(3, 32, 32), classes=CIFAR100_CLASSES,
        split_sizes={"train": 50000, "test": 10000}, val_count=5000,
        files=("train", "test", "meta"), subdirs=("cifar-100-python",),
        archive="cifar-100-python.tar.gz", archive_dir="cifar-100-python", urls=(CIFAR_URL,),
        md5={
            "train": "16019d7e3df5f24257cddd939b257f8d",
            "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
            "meta": "7973b15100ade9c7d40fb424638fde48",
        },
        archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
        canonical_sizes={"train": 50000, "test": 10000},
    ),
    "cifar10-jpeg": DatasetInfo(
        name="cifar10-jpeg", description="CIFAR-10 (JPEG) image folder, train/ and test/",
        format="imagefolder", input_shape=(3, 32, 32), classes=CIFAR10_CLASSES,
        split_sizes={"train": 50000, "test": 10000}, val_fraction=0.1,
        archive="cifar10-jpeg.tar.gz", subdirs=("cifar10-jpeg",),
    ),
}

# Image folders have no registry entry of their own; they carve out this fraction as "val".
IMAGEFOLDER_VAL_FRACTION = 0.1
DIGITS_TEST_FRACTION = 0.2
DIGITS_VAL_FRACTION = 0.2
SPLIT_SEED = 20240611
SPLITS = ("train", "val", "test", "trainval")
