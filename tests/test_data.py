"""Tests of lr_env.data on tiny synthetic parquet shards written with the `datasets` library."""

from __future__ import annotations

import io
import logging
import os
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from lr_env import _cifar10_files as files
from lr_env.data import (
    CACHE_DIR_ENV,
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATA_DIR_ENV,
    HUB_DATASET,
    DataError,
    DeviceSplit,
    TrainBatcher,
    eval_batches,
    load_cifar10,
    normalize,
    resolve_data_source,
    split_indices,
)

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]
TRAIN_PER_CLASS = 6
TEST_PER_CLASS = 2
# Read before the autouse fixture clears the variable for every test.
REAL_DATA_DIR = os.environ.get(DATA_DIR_ENV)


def write_parquet_dir(
    directory: Path, image_column: str = "img", label_column: str = "label", seed: int = 0,
    jpeg: bool = False,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write train (two shards) and test parquet files, and return the expected arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    features = datasets.Features(
        {image_column: datasets.Image(), label_column: datasets.ClassLabel(names=CLASS_NAMES)}
    )
    expected = {}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        labels = rng.permutation(np.repeat(np.arange(10), per_class))
        # Values from 1 keep zero for the crop padding, so tests can tell the two apart.
        pixels = rng.integers(1, 256, size=(len(labels), 32, 32, 3), dtype=np.uint8)
        if jpeg:
            encoded = []
            for image in pixels:
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, format="JPEG", quality=90)
                encoded.append({"bytes": buffer.getvalue(), "path": None})
            pixels = np.stack([np.asarray(Image.open(io.BytesIO(e["bytes"]))) for e in encoded])
            column = encoded
        else:
            column = [Image.fromarray(image) for image in pixels]
        dataset = datasets.Dataset.from_dict(
            {image_column: column, label_column: labels.tolist()}, features=features
        )
        if split == "train":
            for index in range(2):
                shard = dataset.shard(num_shards=2, index=index, contiguous=True)
                shard.to_parquet(str(directory / f"train-0000{index}-of-00002.parquet"))
        else:
            dataset.to_parquet(str(directory / "test-00000-of-00001.parquet"))
        expected[split] = (pixels, labels.astype(np.int64))
    return expected


def assert_arrays_match(arrays, expected) -> None:
    for split in ("train", "test"):
        images = getattr(arrays, f"{split}_images")
        labels = getattr(arrays, f"{split}_labels")
        assert images.dtype == np.uint8
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images, expected[split][0])
        np.testing.assert_array_equal(labels, expected[split][1])


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """Clear the data variable and keep every default cache inside tmp_path."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "default-cache"))


@pytest.fixture(scope="module")
def parquet_source(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cifar10-parquet")
    return directory, write_parquet_dir(directory)


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


@pytest.fixture
def hub_copy(parquet_source, tmp_path):
    """Return the synthetic shards as a DatasetDict, standing in for the Hub download."""
    directory, _ = parquet_source
    return datasets.load_dataset(
        "parquet",
        data_files={"train": [str(p) for p in sorted(directory.glob("train-*.parquet"))],
                    "test": [str(directory / "test-00000-of-00001.parquet")]},
        cache_dir=str(tmp_path / "hf-for-test"),
    )


def count_load_dataset_calls(monkeypatch) -> list:
    calls = []
    original = datasets.load_dataset

    def counting_load_dataset(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", counting_load_dataset)
    return calls


def forbid_load_dataset(monkeypatch) -> None:
    def failing_load_dataset(*args, **kwargs):
        raise AssertionError("datasets.load_dataset was called although a cache exists")

    monkeypatch.setattr(datasets, "load_dataset", failing_load_dataset)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def test_load_from_argument(parquet_source, cache_dir):
    directory, expected = parquet_source

    arrays = load_cifar10(directory, cache_dir=cache_dir)

    assert_arrays_match(arrays, expected)
    assert arrays.source == str(directory)
    assert arrays.fingerprint.startswith("local-")
    assert arrays.train_images.shape == (10 * TRAIN_PER_CLASS, 32, 32, 3)


def test_load_from_environment_variable(parquet_source, cache_dir, monkeypatch):
    directory, expected = parquet_source
    monkeypatch.setenv(DATA_DIR_ENV, str(directory))

    arrays = load_cifar10(cache_dir=cache_dir)

    assert_arrays_match(arrays, expected)
    assert arrays.source == str(directory)


def test_cache_directory_from_environment(parquet_source, tmp_path, monkeypatch):
    directory, _ = parquet_source
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "from-env"))

    arrays = load_cifar10(directory)

    assert (tmp_path / "from-env" / f"cifar10-{arrays.fingerprint}.npz").is_file()


def test_resolve_data_source_order(tmp_path, monkeypatch):
    assert resolve_data_source() == HUB_DATASET

    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_data_source() == tmp_path / "env"
    assert resolve_data_source(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_source(HUB_DATASET) == HUB_DATASET


def test_load_image_and_labels_columns(tmp_path, cache_dir):
    expected = write_parquet_dir(tmp_path / "data", image_column="image", label_column="labels")

    arrays = load_cifar10(tmp_path / "data", cache_dir=cache_dir)

    assert_arrays_match(arrays, expected)


def test_load_jpeg_shards(tmp_path, cache_dir):
    expected = write_parquet_dir(tmp_path / "data", jpeg=True)

    arrays = load_cifar10(tmp_path / "data", cache_dir=cache_dir)

    assert_arrays_match(arrays, expected)


def test_unknown_columns_are_listed(tmp_path, cache_dir):
    write_parquet_dir(tmp_path / "data", image_column="picture", label_column="target")

    with pytest.raises(DataError) as error:
        load_cifar10(tmp_path / "data", cache_dir=cache_dir)

    message = str(error.value)
    assert "'picture'" in message
    assert "'target'" in message
    assert str(tmp_path / "data") in message


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------


def test_second_load_uses_cache(parquet_source, cache_dir, monkeypatch):
    directory, expected = parquet_source
    first = load_cifar10(directory, cache_dir=cache_dir)
    forbid_load_dataset(monkeypatch)

    second = load_cifar10(directory, cache_dir=cache_dir)

    assert_arrays_match(second, expected)
    assert second.fingerprint == first.fingerprint
    assert second.source == first.source


def test_cache_rebuilt_when_source_changes(parquet_source, tmp_path, cache_dir, monkeypatch):
    directory = tmp_path / "data"
    shutil.copytree(parquet_source[0], directory)
    first = load_cifar10(directory, cache_dir=cache_dir)
    calls = count_load_dataset_calls(monkeypatch)

    changed = write_parquet_dir(tmp_path / "changed", seed=1)
    shutil.copy(tmp_path / "changed" / "test-00000-of-00001.parquet", directory)
    shard = directory / "test-00000-of-00001.parquet"
    stat = shard.stat()
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = load_cifar10(directory, cache_dir=cache_dir)

    assert len(calls) == 1
    assert second.fingerprint != first.fingerprint
    np.testing.assert_array_equal(second.test_images, changed["test"][0])
    np.testing.assert_array_equal(second.train_images, first.train_images)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "garbage"])
def test_corrupt_cache_rebuilt(parquet_source, cache_dir, monkeypatch, caplog, damage):
    directory, expected = parquet_source
    arrays = load_cifar10(directory, cache_dir=cache_dir)
    path = cache_dir / f"cifar10-{arrays.fingerprint}.npz"
    content = bytearray(path.read_bytes())
    if damage == "truncate":
        content = content[: len(content) // 2]
    elif damage == "flip_byte":
        content[len(content) // 2] ^= 0xFF
    else:
        content = bytearray(b"not a zip file")
    path.write_bytes(bytes(content))
    calls = count_load_dataset_calls(monkeypatch)

    with caplog.at_level(logging.WARNING, logger="lr_env.data"):
        rebuilt = load_cifar10(directory, cache_dir=cache_dir)

    assert len(calls) == 1
    assert "corrupt CIFAR-10 cache" in caplog.text
    assert_arrays_match(rebuilt, expected)
    with np.load(path) as archive:
        np.testing.assert_array_equal(archive["train_images"], expected["train"][0])


def test_interrupted_cache_write_leaves_no_file(parquet_source, cache_dir, monkeypatch):
    directory, expected = parquet_source
    original_savez = np.savez

    def interrupted_savez(file, **arrays):
        file.write(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted_savez)
    with pytest.raises(KeyboardInterrupt):
        load_cifar10(directory, cache_dir=cache_dir)

    assert list(cache_dir.glob("*.npz")) == []
    assert list(cache_dir.glob(".*.tmp")) == []
    monkeypatch.setattr(np, "savez", original_savez)
    assert_arrays_match(load_cifar10(directory, cache_dir=cache_dir), expected)
    assert len(list(cache_dir.glob("*.npz"))) == 1


def test_unwritable_cache_still_returns_data(parquet_source, tmp_path, caplog, monkeypatch):
    directory, expected = parquet_source
    blocking_file = tmp_path / "not-a-directory"
    blocking_file.write_text("")
    # datasets then falls back to its default cache, so move that into tmp_path as well.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")

    with caplog.at_level(logging.WARNING, logger="lr_env.data"):
        arrays = load_cifar10(directory, cache_dir=blocking_file / "cache")

    assert_arrays_match(arrays, expected)
    assert "Could not write the CIFAR-10 cache" in caplog.text


def test_hub_source_cached_by_revision(parquet_source, hub_copy, cache_dir, monkeypatch, caplog):
    _, expected = parquet_source
    hub_calls = []

    def fake_load_dataset(path, *args, **kwargs):
        hub_calls.append(path)
        return hub_copy

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(files, "hub_revision", lambda: "revision-a")

    first = load_cifar10(cache_dir=cache_dir)
    assert hub_calls == [HUB_DATASET]
    assert first.source == HUB_DATASET
    assert first.fingerprint.startswith("hub-")
    assert_arrays_match(first, expected)

    assert load_cifar10(cache_dir=cache_dir).fingerprint == first.fingerprint
    assert len(hub_calls) == 1

    monkeypatch.setattr(files, "hub_revision", lambda: None)
    with caplog.at_level(logging.WARNING, logger="lr_env.data"):
        offline = load_cifar10(cache_dir=cache_dir)
    assert len(hub_calls) == 1
    assert offline.fingerprint == first.fingerprint
    assert "may be out of date" in caplog.text

    monkeypatch.setattr(files, "hub_revision", lambda: "revision-b")
    newer = load_cifar10(cache_dir=cache_dir)
    assert len(hub_calls) == 2
    assert newer.fingerprint != first.fingerprint


def test_hub_unknown_revision_uses_fingerprints(parquet_source, hub_copy, cache_dir, monkeypatch):
    _, expected = parquet_source
    monkeypatch.setattr(datasets, "load_dataset", lambda path, *args, **kwargs: hub_copy)
    monkeypatch.setattr(files, "hub_revision", lambda: None)

    arrays = load_cifar10(cache_dir=cache_dir)

    assert_arrays_match(arrays, expected)
    assert arrays.fingerprint.startswith("hub-")
    assert (cache_dir / f"cifar10-{arrays.fingerprint}.npz").is_file()


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_missing_directory_error(tmp_path, cache_dir):
    missing = tmp_path / "missing"

    with pytest.raises(DataError) as error:
        load_cifar10(missing, cache_dir=cache_dir)

    assert f"not found: {missing}" in str(error.value)
    assert DATA_DIR_ENV in str(error.value)


def test_missing_directory_from_environment(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "missing"))

    with pytest.raises(DataError, match=r"from the \$LR_ENV_DATA_DIR"):
        load_cifar10(cache_dir=cache_dir)


def test_empty_directory_error(tmp_path, cache_dir):
    (tmp_path / "empty").mkdir()

    with pytest.raises(DataError, match="is empty"):
        load_cifar10(tmp_path / "empty", cache_dir=cache_dir)


@pytest.mark.parametrize("split", ["train", "test"])
def test_missing_split_shards_error(parquet_source, tmp_path, cache_dir, split):
    directory = tmp_path / "data"
    shutil.copytree(parquet_source[0], directory)
    for shard in directory.glob(f"{split}-*.parquet"):
        shard.unlink()

    with pytest.raises(DataError) as error:
        load_cifar10(directory, cache_dir=cache_dir)

    message = str(error.value)
    assert f"No {split} shards ({split}-*.parquet)" in message
    assert str(directory) in message


def test_shards_in_data_subdirectory_hint(parquet_source, tmp_path, cache_dir):
    shutil.copytree(parquet_source[0], tmp_path / "cifar10" / "data")

    with pytest.raises(DataError, match="subdirectory .*data contains them"):
        load_cifar10(tmp_path / "cifar10", cache_dir=cache_dir)


def test_corrupt_parquet_footer_error(parquet_source, tmp_path, cache_dir):
    directory = tmp_path / "data"
    shutil.copytree(parquet_source[0], directory)
    shard = directory / "test-00000-of-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:-100])

    with pytest.raises(DataError) as error:
        load_cifar10(directory, cache_dir=cache_dir)

    assert f"Corrupt parquet shard {shard}" in str(error.value)


def test_corrupt_parquet_body_error(parquet_source, tmp_path, cache_dir):
    directory = tmp_path / "data"
    shutil.copytree(parquet_source[0], directory)
    shard = directory / "train-00000-of-00002.parquet"
    content = bytearray(shard.read_bytes())
    # Keep the leading magic number and the footer intact, and overwrite the data pages.
    for position in range(100, len(content) // 2):
        content[position] = 0x5A
    shard.write_bytes(bytes(content))

    with pytest.raises(DataError) as error:
        load_cifar10(directory, cache_dir=cache_dir)

    assert f"Corrupt parquet shard {shard}" in str(error.value)


def test_offline_without_local_data_error(tmp_path, cache_dir, monkeypatch):
    # These constants are what HF_HUB_OFFLINE=1 sets at import time. With both set, every
    # request raises before it is sent, and the empty caches hold no copy of the dataset.
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))

    with pytest.raises(DataError) as error:
        load_cifar10(cache_dir=cache_dir)

    message = str(error.value)
    assert HUB_DATASET in message
    assert DATA_DIR_ENV in message
    assert "online" in message


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def split_labels():
    return np.random.default_rng(3).permutation(np.repeat(np.arange(10), 50))


def test_split_sizes_and_balance(split_labels):
    train_idx, val_idx = split_indices(split_labels, val_size=100, seed=0)

    assert len(val_idx) == 100
    assert len(train_idx) == 400
    assert train_idx.dtype == np.int64
    assert val_idx.dtype == np.int64
    assert np.intersect1d(train_idx, val_idx).size == 0
    assert np.bincount(split_labels[val_idx], minlength=10).tolist() == [10] * 10
    assert np.bincount(split_labels[train_idx], minlength=10).tolist() == [40] * 10


def test_split_seed_determinism(split_labels):
    first = split_indices(split_labels, val_size=100, seed=5)
    again = split_indices(split_labels, val_size=100, seed=5)
    other = split_indices(split_labels, val_size=100, seed=6)

    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_split_subset(split_labels):
    full_train, val_idx = split_indices(split_labels, val_size=100, seed=1)
    small_train, small_val = split_indices(split_labels, val_size=100, subset=50, seed=1)
    larger_train, _ = split_indices(split_labels, val_size=100, subset=200, seed=1)

    assert len(small_train) == 50
    assert np.bincount(split_labels[small_train], minlength=10).tolist() == [5] * 10
    np.testing.assert_array_equal(small_val, val_idx)
    assert np.isin(small_train, full_train).all()
    assert np.isin(small_train, larger_train).all()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"val_size": 25}, "val_size=25"),
        ({"val_size": -10}, "val_size=-10"),
        ({"val_size": 600}, "val_size=600"),
        ({"val_size": 100, "subset": 15}, "subset=15"),
        ({"val_size": 100, "subset": 0}, "subset=0"),
        ({"val_size": 100, "subset": 410}, "subset=410"),
    ],
)
def test_split_invalid_sizes(split_labels, kwargs, expected):
    with pytest.raises(DataError, match=expected):
        split_indices(split_labels, **kwargs)


# ---------------------------------------------------------------------------------------------
# Device split, normalisation and batching
# ---------------------------------------------------------------------------------------------


def make_split(count: int = 100, seed: int = 0) -> tuple[DeviceSplit, np.ndarray]:
    """Return a split of random images whose labels are their indices, and the NHWC pixels."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(1, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    return DeviceSplit(pixels, np.arange(count)), pixels


def unnormalize(x: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    return torch.round((x * std + mean) * 255).to(torch.uint8).numpy()


def test_device_split_layout():
    split, pixels = make_split(20)

    assert len(split) == 20
    assert split.images.dtype == torch.uint8
    assert split.images.shape == (20, 3, 32, 32)
    assert split.labels.dtype == torch.int64
    assert split.device == torch.device("cpu")
    np.testing.assert_array_equal(split.images.numpy(), pixels.transpose(0, 3, 1, 2))


def test_device_split_rejects_bad_shape():
    with pytest.raises(DataError, match=r"\(N, 32, 32, 3\)"):
        DeviceSplit(np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4, np.int64))


def test_normalize_values():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

    normalized = normalize(images)

    assert normalized.dtype == torch.float32
    torch.testing.assert_close(normalized, (images / 255.0 - mean) / std, atol=1e-5, rtol=0)
    assert normalize(images, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_normalize_rejects_float_input():
    with pytest.raises(ValueError, match="uint8"):
        normalize(torch.zeros(2, 3, 32, 32))


def test_batch_without_augmentation_matches_images():
    split, _ = make_split(100)
    batcher = TrainBatcher(split, batch_size=25, seed=0, augment=False)
    stored = normalize(split.images)

    seen = []
    for _ in range(batcher.steps_per_epoch):
        x, y = batcher.next_batch()
        assert x.dtype == torch.float32
        assert x.shape == (25, 3, 32, 32)
        assert y.dtype == torch.int64
        assert torch.equal(x, stored[y])
        seen.extend(y.tolist())

    assert sorted(seen) == list(range(100))


def test_augmented_crops_come_from_padded_image():
    split, pixels = make_split(64)
    batcher = TrainBatcher(split, batch_size=32, seed=1, augment=True)
    padded = np.pad(pixels, ((0, 0), (4, 4), (4, 4), (0, 0)))
    low = (0 - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    high = (1 - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)

    flipped = shifted = with_padding = 0
    for _ in range(4):
        x, y = batcher.next_batch()
        assert x.shape == (32, 3, 32, 32)
        assert x.dtype == torch.float32
        for channel in range(3):
            assert x[:, channel].min() >= low[channel] - 1e-5
            assert x[:, channel].max() <= high[channel] + 1e-5
        crops = unnormalize(x).transpose(0, 2, 3, 1)
        for crop, index in zip(crops, y.tolist(), strict=True):
            matches = [
                (top, left, flip)
                for top in range(9)
                for left in range(9)
                for flip in (False, True)
                if np.array_equal(
                    crop,
                    padded[index, top:top + 32, left:left + 32][:, ::-1 if flip else 1],
                )
            ]
            assert len(matches) == 1, f"crop of image {index} matches {matches}"
            top, left, flip = matches[0]
            flipped += flip
            shifted += (top, left) != (4, 4)
            with_padding += bool((crop == 0).all(axis=-1).any())

    assert 0 < flipped < 128
    assert shifted > 0
    assert with_padding > 0


def test_batcher_same_seed_same_batches():
    split, _ = make_split(100)
    first = TrainBatcher(split, batch_size=30, seed=7)
    second = TrainBatcher(split, batch_size=30, seed=7)
    other = TrainBatcher(split, batch_size=30, seed=8)

    differs = False
    for _ in range(7):
        x1, y1 = first.next_batch()
        x2, y2 = second.next_batch()
        x3, _ = other.next_batch()
        assert torch.equal(x1, x2)
        assert torch.equal(y1, y2)
        differs = differs or not torch.equal(x1, x3)
    assert differs


def test_batcher_epochs_reshuffle():
    split, _ = make_split(100)
    batcher = TrainBatcher(split, batch_size=30, seed=0, augment=False)
    assert batcher.steps_per_epoch == 3

    epochs = []
    for _ in range(2):
        assert batcher.epoch == len(epochs)
        labels = torch.cat([batcher.next_batch()[1] for _ in range(batcher.steps_per_epoch)])
        assert len(set(labels.tolist())) == 90
        epochs.append(labels)

    assert batcher.epoch == 2
    assert not torch.equal(epochs[0], epochs[1])


def test_batcher_channels_last():
    split, _ = make_split(40)
    plain = TrainBatcher(split, batch_size=20, seed=3)
    channels_last = TrainBatcher(split, batch_size=20, seed=3, channels_last=True)

    x_plain, _ = plain.next_batch()
    x_last, _ = channels_last.next_batch()

    assert x_last.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x_plain, x_last)


def test_batcher_rejects_oversized_batch():
    split, _ = make_split(10)

    with pytest.raises(ValueError, match="batch_size=11"):
        TrainBatcher(split, batch_size=11, seed=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batcher_cuda_without_host_sync():
    _, pixels = make_split(256)
    split = DeviceSplit(pixels, np.arange(256), device="cuda")
    batcher = TrainBatcher(split, batch_size=64, seed=0, channels_last=True)
    batcher.next_batch()

    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(10):
            x, y = batcher.next_batch()
        batches = list(eval_batches(split, batch_size=100))
    finally:
        torch.cuda.set_sync_debug_mode("default")

    assert x.device.type == "cuda"
    assert y.device.type == "cuda"
    assert len(batches) == 3


def test_eval_batches_order_and_limit():
    split, _ = make_split(25)
    stored = normalize(split.images)

    batches = list(eval_batches(split, batch_size=10))
    assert [len(y) for _, y in batches] == [10, 10, 5]
    assert torch.equal(torch.cat([x for x, _ in batches]), stored)
    assert torch.cat([y for _, y in batches]).tolist() == list(range(25))

    limited = list(eval_batches(split, batch_size=10, limit=12))
    assert [y.tolist() for _, y in limited] == [list(range(10)), [10, 11]]
    assert sum(len(y) for _, y in eval_batches(split, limit=1000)) == 25


# ---------------------------------------------------------------------------------------------
# Real data
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_cifar10_copy(tmp_path):
    if not REAL_DATA_DIR:
        pytest.skip(f"set {DATA_DIR_ENV} to a directory of CIFAR-10 parquet shards")

    arrays = load_cifar10(REAL_DATA_DIR, cache_dir=tmp_path)

    assert arrays.train_images.shape == (50_000, 32, 32, 3)
    assert arrays.test_images.shape == (10_000, 32, 32, 3)
    assert arrays.train_images.dtype == np.uint8
    assert arrays.train_labels.dtype == np.int64
    assert np.bincount(arrays.train_labels).tolist() == [5_000] * 10
    assert np.bincount(arrays.test_labels).tolist() == [1_000] * 10
