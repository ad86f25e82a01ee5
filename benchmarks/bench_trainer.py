"""Time Trainer.train_steps against a plain hand-written PyTorch loop of the same model and data.

Both loops train the same CIFAR ResNet-18 on the same batches from the same TrainBatcher, alternating
rounds in one process, so machine noise affects both alike. The ratio (trainer time / plain time) is
the cost of the trainer's statistics and per-group learning rates; the target is at most 1.05.

    python benchmarks/bench_trainer.py --width 8 --steps 30 --rounds 5
    python benchmarks/bench_trainer.py --device cuda --width 64 --steps 200 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from lr_env.data import DeviceSplit, TrainBatcher
from lr_env.model import CifarResNet18
from lr_env.trainer import Trainer, TrainerConfig, resolve_device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_split(n_images: int, device: torch.device) -> DeviceSplit:
    """Random uint8 images: the step cost does not depend on pixel values."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_images)
    return DeviceSplit(images, labels, device)


class PlainLoop:
    """The reference: one SGD parameter group, no statistics, same precision settings as the trainer."""

    def __init__(self, trainer: Trainer, split: DeviceSplit) -> None:
        config = trainer.config
        self.device = trainer.device
        self.amp = trainer.amp
        self.model = CifarResNet18(width=config.width).to(self.device)
        if trainer.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model) if config.compile else self.model
        fast = {"fused": True} if self.device.type == "cuda" else {"foreach": True}
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=config.base_lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            **fast,
        )
        self.batcher = TrainBatcher(split, config.batch_size, seed=1, channels_last=trainer.channels_last)

    def run(self, n: int) -> None:
        for _ in range(n):
            images, labels = self.batcher.next_batch()
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                loss = F.cross_entropy(self.forward(images).float(), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()


def timed(function, n: int, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    function(n)
    synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    parser.add_argument("--width", type=int, default=8, help="ResNet width (default: 8)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128)")
    parser.add_argument("--steps", type=int, default=30, help="SGD steps per timed round (default: 30)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per loop (default: 5)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per loop first (default: 5)")
    parser.add_argument("--compile", action="store_true", help="wrap both models in torch.compile")
    parser.add_argument(
        "--channels-last",
        choices=("auto", "on", "off"),
        default="auto",
        help="memory format of both loops; auto uses channels_last on CUDA only (default: auto)",
    )
    args = parser.parse_args()

    device = resolve_device(args.device)
    split = random_split(max(4096, 4 * args.batch_size), device)
    channels_last = {"auto": None, "on": True, "off": False}[args.channels_last]
    config = TrainerConfig(
        width=args.width,
        batch_size=args.batch_size,
        total_steps=10**9,
        compile=args.compile,
        channels_last=channels_last,
    )
    trainer = Trainer(config, split, seed=0, device=device)
    plain = PlainLoop(trainer, split)

    def trainer_run(n):
        # train_steps(10) is the environment's unit: one call per decision.
        for _ in range(n // 10):
            trainer.train_steps(10)

    steps = 10 * max(1, args.steps // 10)
    trainer_run(max(10, args.warmup))
    plain.run(args.warmup)
    trainer_times, plain_times = [], []
    for _ in range(args.rounds):
        plain_times.append(timed(plain.run, steps, device))
        trainer_times.append(timed(trainer_run, steps, device))

    trainer_median = statistics.median(trainer_times)
    plain_median = statistics.median(plain_times)
    print(f"device {device}, width {args.width}, batch {args.batch_size}, {steps} steps x {args.rounds} rounds")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, amp {trainer.amp}, "
          f"channels_last {trainer.channels_last}, compile {args.compile}")
    print(f"plain loop: {steps * args.batch_size / plain_median:,.0f} img/s (median {plain_median:.3f} s)")
    print(f"trainer:    {steps * args.batch_size / trainer_median:,.0f} img/s (median {trainer_median:.3f} s)")
    print(f"ratio trainer/plain: {trainer_median / plain_median:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
