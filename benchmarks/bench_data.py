"""Time CIFAR-10 loading with a fresh and a warm cache, and TrainBatcher.next_batch on the CPU.

Usage:
    python -m benchmarks.bench_data --data-dir /path/to/cifar10/data   # from the repository root
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import datasets
import torch

from lr_env.data import DeviceSplit, TrainBatcher, load_cifar10, resolve_data_source, split_indices


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=None,
        help="directory of CIFAR-10 parquet shards (default: $LR_ENV_DATA_DIR, else the Hub)",
    )
    parser.add_argument(
        "--cache-dir", default=None,
        help="parent directory of the fresh cache directory that this run creates and deletes "
             "(default: the system temporary directory)",
    )
    parser.add_argument("--batch-size", type=int, default=128, help="images per training batch")
    parser.add_argument("--steps", type=int, default=200, help="timed next_batch calls")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch intra-op threads for the batching benchmark (default: torch's choice)",
    )
    return parser.parse_args()


def time_batches(batcher: TrainBatcher, steps: int) -> float:
    """Return images per second over `steps` calls, after 5 untimed warm-up calls."""
    for _ in range(5):
        batcher.next_batch()
    started = time.perf_counter()
    for _ in range(steps):
        batcher.next_batch()
    return steps * batcher.batch_size / (time.perf_counter() - started)


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"source: {resolve_data_source(args.data_dir)}")
    print(f"torch {torch.__version__}, datasets {datasets.__version__}, "
          f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads")

    cache_dir = tempfile.mkdtemp(prefix="bench-data-", dir=args.cache_dir)
    try:
        started = time.perf_counter()
        arrays = load_cifar10(args.data_dir, cache_dir=cache_dir)
        first = time.perf_counter() - started

        started = time.perf_counter()
        arrays = load_cifar10(args.data_dir, cache_dir=cache_dir)
        second = time.perf_counter() - started
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    total = len(arrays.train_images) + len(arrays.test_images)
    print(f"first load (fresh cache, decodes {total} images): {first:.2f} s")
    print(f"second load (from cache): {second:.2f} s")

    train_idx, _ = split_indices(arrays.train_labels, val_size=5000, seed=0)
    split = DeviceSplit(arrays.train_images[train_idx], arrays.train_labels[train_idx], "cpu")
    for augment in (True, False):
        batcher = TrainBatcher(split, batch_size=args.batch_size, seed=0, augment=augment)
        rate = time_batches(batcher, args.steps)
        print(f"TrainBatcher.next_batch on CPU, batch {args.batch_size}, augment={augment}: "
              f"{rate:,.0f} images/s")


if __name__ == "__main__":
    main()
