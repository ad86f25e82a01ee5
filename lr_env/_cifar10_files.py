"""CIFAR-10 parquet shards, image decoding and the decoded-array cache behind `lr_env.data`.

Import the public names from `lr_env.data`. This module exists to keep that file short.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger("lr_env.data")

DATA_DIR_ENV = "LR_ENV_DATA_DIR"
HUB_DATASET = "uoft-cs/cifar10"
IMAGE_SHAPE = (32, 32, 3)
IMAGE_COLUMNS = ("img", "image")
LABEL_COLUMNS = ("label", "labels")
SPLITS = ("train", "test")
HUB_CACHE_PREFIX = "cifar10-hub-"

# Bump when the decoding or the cache layout changes, so that old cache files are not reused.
_CACHE_FORMAT_VERSION = 1
_EXPECTED_DIRECTORY = "a directory containing train-*.parquet and test-*.parquet shards"


class DataError(RuntimeError):
    """A CIFAR-10 source or cache that cannot be used, with the path or dataset and the fix."""


@dataclass(frozen=True, eq=False)
class Cifar10Arrays:
    """Decoded CIFAR-10: images are uint8 (N, 32, 32, 3) in RGB order, labels are int64 (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    fingerprint: str


def cache_path(cache_root: Path, fingerprint: str) -> Path:
    return cache_root / f"cifar10-{fingerprint}.npz"


def find_shards(directory: Path, origin: str) -> dict[str, list[Path]]:
    """Return the sorted `train-*.parquet` and `test-*.parquet` shards of `directory`."""
    if not directory.exists():
        raise DataError(
            f"CIFAR-10 data directory not found: {directory} (from the {origin}). Point "
            f"{DATA_DIR_ENV} or data_dir at {_EXPECTED_DIRECTORY}, or unset both to download "
            f"{HUB_DATASET} from the Hugging Face Hub."
        )
    if not directory.is_dir():
        raise DataError(
            f"CIFAR-10 data path {directory} is not a directory. Use {_EXPECTED_DIRECTORY}."
        )

    entries = sorted(path.name for path in directory.iterdir())
    if not entries:
        raise DataError(
            f"CIFAR-10 data directory {directory} is empty. Fill it with the train-*.parquet "
            f"and test-*.parquet shards of {HUB_DATASET}."
        )

    shards = {split: sorted(directory.glob(f"{split}-*.parquet")) for split in SPLITS}
    for split, paths in shards.items():
        if paths:
            continue
        hint = ""
        if sorted((directory / "data").glob(f"{split}-*.parquet")):
            hint = f" The subdirectory {directory / 'data'} contains them, so use that path."
        raise DataError(
            f"No {split} shards ({split}-*.parquet) in CIFAR-10 data directory {directory}, "
            f"which contains {entries[:10]}. Use {_EXPECTED_DIRECTORY}.{hint}"
        )
    return shards


def local_fingerprint(shards: dict[str, list[Path]]) -> str:
    """Hash the shard names, sizes and modification times, without reading the contents."""
    listing = []
    for split, paths in shards.items():
        for path in paths:
            stat = path.stat()
            listing.append([split, path.name, stat.st_size, stat.st_mtime_ns])
    text = json.dumps([_CACHE_FORMAT_VERSION, listing])
    return "local-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def hub_fingerprint(text: str) -> str:
    digest = hashlib.sha256(f"{_CACHE_FORMAT_VERSION}:{text}".encode()).hexdigest()[:20]
    return "hub-" + digest


def hub_revision() -> str | None:
    """Return the current commit of `HUB_DATASET`, or None when offline or unreachable."""
    import datasets
    import huggingface_hub

    if datasets.config.HF_HUB_OFFLINE or huggingface_hub.constants.is_offline_mode():
        return None
    # The lookup only picks the cache file. Any failure (HTTP, transport, timeout) falls back
    # to a cached copy or to `datasets`, which raises its own error if the Hub is unreachable.
    try:
        return huggingface_hub.HfApi().dataset_info(HUB_DATASET, timeout=10).sha
    except Exception as exc:
        logger.warning("Could not look up the revision of %s: %s", HUB_DATASET, exc)
        return None


def check_parquet_footers(paths: list[Path]) -> None:
    """Raise DataError naming the first shard whose parquet footer cannot be read."""
    import pyarrow.parquet as pq

    _raise_for_corrupt_shard(paths, pq.read_metadata)


def load_local(directory: Path, shards: dict[str, list[Path]], cache_root: Path):
    """Read the shards with `datasets`, keeping its Arrow copy under `cache_root`."""
    import datasets

    arrow_cache = cache_root / "huggingface"
    try:
        arrow_cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logger.warning("Cannot create %s, so datasets uses its default cache: %s",
                       arrow_cache, exc)
        arrow_cache = None

    data_files = {split: [str(path) for path in paths] for split, paths in shards.items()}
    try:
        return datasets.load_dataset(
            "parquet", data_files=data_files,
            cache_dir=str(arrow_cache) if arrow_cache is not None else None,
        )
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as exc:
        all_shards = [path for paths in shards.values() for path in paths]
        _raise_for_unreadable_shard(all_shards)
        cause = exc.__cause__ or exc
        raise DataError(
            f"Failed to read the CIFAR-10 parquet shards in {directory}: "
            f"{type(cause).__name__}: {_sentence(cause)} Check that every shard is an intact "
            f"parquet file and that the cache directory {cache_root} is writable."
        ) from exc


def _raise_for_unreadable_shard(paths: list[Path]) -> None:
    """Read every shard in full and raise DataError naming the first one that fails."""
    import pyarrow.parquet as pq

    _raise_for_corrupt_shard(paths, pq.read_table)


def _raise_for_corrupt_shard(paths: list[Path], read) -> None:
    """Call `read` on each shard and raise DataError naming the first one it fails on."""
    for path in paths:
        try:
            read(path)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"Corrupt parquet shard {path}: {_sentence(exc)} Replace it with an intact "
                "copy of the CIFAR-10 shard."
            ) from exc


def _sentence(exc: BaseException) -> str:
    """Return the exception message ending with exactly one period."""
    return str(exc).rstrip(". ") + "."


def load_hub(cache_root: Path):
    """Load `HUB_DATASET` with `datasets`, which uses its own default cache."""
    import datasets

    try:
        dataset_dict = datasets.load_dataset(HUB_DATASET)
    except (OSError, datasets.exceptions.DatasetsError) as exc:
        raise DataError(
            f"Could not load {HUB_DATASET} from the Hugging Face Hub: {_sentence(exc)} "
            f"Without network access, set {DATA_DIR_ENV} to a directory of CIFAR-10 parquet shards "
            f"(train-*.parquet, test-*.parquet), or run once online so that the decoded "
            f"images are cached in {cache_root}."
        ) from exc
    missing = [split for split in SPLITS if split not in dataset_dict]
    if missing:
        raise DataError(
            f"{HUB_DATASET} has no {missing} split, only {list(dataset_dict)}. Set "
            f"{DATA_DIR_ENV} to a directory of CIFAR-10 parquet shards instead."
        )
    return dataset_dict


def decode_split(dataset, split: str, source: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode one `datasets.Dataset` split to uint8 images and int64 labels.

    The JPEG or PNG bytes are read straight from the Arrow storage of the `Image` feature and
    decoded with torchvision or Pillow, which is faster than letting `datasets` build a PIL
    image per row.
    """
    import datasets

    features = dataset.features
    image_column = next((name for name in IMAGE_COLUMNS if name in features), None)
    label_column = next((name for name in LABEL_COLUMNS if name in features), None)
    if image_column is None or label_column is None:
        raise DataError(
            f"The {split} split of {source} has columns {list(features)}, but CIFAR-10 needs "
            f"an image column named one of {list(IMAGE_COLUMNS)} and a label column named one "
            f"of {list(LABEL_COLUMNS)}. Rename the columns in the parquet shards."
        )
    if not isinstance(features[image_column], datasets.Image):
        raise DataError(
            f"Column {image_column!r} of the {split} split of {source} is "
            f"{features[image_column]}, not an Image feature. Store the images with Image()."
        )

    table = dataset.with_format("arrow")[:]
    label_array = table.column(label_column)
    if label_array.null_count:
        raise DataError(
            f"The {split} split of {source} has {label_array.null_count} missing labels. "
            "Fill in every label."
        )
    labels = label_array.to_numpy().astype(np.int64)
    num_classes = getattr(features[label_column], "num_classes", None)
    if labels.size and (labels.min() < 0 or (num_classes and labels.max() >= num_classes)):
        raise DataError(
            f"The {split} split of {source} has labels outside 0..{num_classes}. Fix the "
            "label column."
        )

    storage = table.column(image_column).combine_chunks()
    encoded = storage.field("bytes").to_pylist()
    images = _decode_jpeg_batch(encoded)
    if images is None:
        paths = storage.field("path").to_pylist()
        images = np.empty((len(encoded), *IMAGE_SHAPE), dtype=np.uint8)
        for index, data in enumerate(encoded):
            description = f"{split} image {index} of {source}"
            images[index] = _decode_image(data, paths[index], description)
    return images, labels


def _decode_jpeg_batch(encoded: list[bytes | None]) -> np.ndarray | None:
    """Decode JPEG bytes with torchvision in one call, or return None to use Pillow instead.

    Pillow spends most of its time per image in Python, so this is about 3x faster. Both use
    libjpeg and gave identical pixels for all 60,000 CIFAR-10 images (torchvision 0.29, Pillow 13).
    None means some entry is not JPEG bytes, torchvision is missing or failed, or an image is
    not 32x32. The Pillow path then decodes everything and names the offending image.
    """
    if not encoded or not all(data is not None and data[:2] == b"\xff\xd8" for data in encoded):
        return None
    try:
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        # bytearray copies each image, because torch warns about read-only buffers.
        tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in encoded]
        # NOTE: torchvision 0.29 deprecates its image decoders in favour of TorchCodec. Once
        # they are removed, the ImportError below sends every load to the Pillow path.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
            decoded = decode_jpeg(tensors, mode=ImageReadMode.RGB)
    except (ImportError, RuntimeError) as exc:
        logger.info("Decoding with Pillow because torchvision could not: %s", exc)
        return None
    if any(image.shape != (3, *IMAGE_SHAPE[:2]) for image in decoded):
        return None
    return np.ascontiguousarray(torch.stack(decoded).permute(0, 2, 3, 1).numpy())


def _decode_image(data: bytes | None, path: str | None, description: str) -> np.ndarray:
    if data is None and path is None:
        raise DataError(f"{description} has neither bytes nor a path. Replace the shard.")
    try:
        image = Image.open(io.BytesIO(data) if data is not None else path)
        if image.mode != "RGB":
            image = image.convert("RGB")
        pixels = np.asarray(image)
    # Pillow raises SyntaxError for some broken PNG files, not only OSError.
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"Failed to decode {description}: {_sentence(exc)} Replace the shard."
        ) from exc
    if pixels.shape != IMAGE_SHAPE:
        raise DataError(
            f"{description} has shape {pixels.shape}, expected {IMAGE_SHAPE}. Use CIFAR-10 "
            "images of 32x32 pixels."
        )
    return pixels


def read_cache(path: Path, fingerprint: str | None) -> Cifar10Arrays | None:
    """Return the cached arrays, or None when the file is absent, corrupt or for another source.

    With `fingerprint=None`, a cache for any fingerprint is accepted. A corrupt file is logged
    and deleted so that the caller rebuilds it. `np.load` checks the zip CRC-32 of each member
    while reading, which catches flipped bytes as well as truncation.
    """
    if not path.is_file():
        return None
    started = time.perf_counter()
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = Cifar10Arrays(
                train_images=archive["train_images"],
                train_labels=archive["train_labels"],
                test_images=archive["test_images"],
                test_labels=archive["test_labels"],
                source=str(archive["source"]),
                fingerprint=str(archive["fingerprint"]),
            )
        _check_arrays(arrays)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        logger.warning("Deleting corrupt CIFAR-10 cache %s and rebuilding it: %s", path, exc)
        path.unlink(missing_ok=True)
        return None
    if fingerprint is not None and arrays.fingerprint != fingerprint:
        logger.warning(
            "Ignoring CIFAR-10 cache %s because it stores fingerprint %s, expected %s",
            path, arrays.fingerprint, fingerprint,
        )
        return None
    logger.info("Loaded CIFAR-10 from cache %s in %.2f s", path, time.perf_counter() - started)
    return arrays


def read_newest_hub_cache(cache_root: Path) -> Cifar10Arrays | None:
    """Return the most recently written valid Hub cache in `cache_root`, whatever its revision."""
    candidates = sorted(
        cache_root.glob(f"{HUB_CACHE_PREFIX}*.npz"),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for path in candidates:
        arrays = read_cache(path, fingerprint=None)
        if arrays is not None:
            logger.warning(
                "Cannot check the current revision of %s, so using the cached copy %s, which "
                "may be out of date", HUB_DATASET, path,
            )
            return arrays
    return None


def _check_arrays(arrays: Cifar10Arrays) -> None:
    for split in SPLITS:
        images = getattr(arrays, f"{split}_images")
        labels = getattr(arrays, f"{split}_labels")
        if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"{split}_images is {images.dtype} {images.shape}")
        if labels.dtype != np.int64 or labels.shape != (len(images),):
            raise ValueError(f"{split}_labels is {labels.dtype} {labels.shape}")


def write_cache(path: Path, arrays: Cifar10Arrays) -> None:
    """Write the cache through a temporary file and a rename, so readers never see a partial file.

    A cache that cannot be written is logged and skipped, and the caller still gets its data.
    """
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp", delete=False
        ) as file:
            temporary = Path(file.name)
            np.savez(
                file,
                train_images=arrays.train_images,
                train_labels=arrays.train_labels,
                test_images=arrays.test_images,
                test_labels=arrays.test_labels,
                source=np.array(arrays.source),
                fingerprint=np.array(arrays.fingerprint),
            )
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        logger.warning(
            "Could not write the CIFAR-10 cache %s, so the next load decodes the images "
            "again: %s", path, exc,
        )
        return
    finally:
        # Also runs on KeyboardInterrupt. After a successful rename the file is already gone.
        if temporary is not None:
            temporary.unlink(missing_ok=True)
    logger.info("Cached decoded CIFAR-10 in %s", path)
