"""Time LrControlEnv steps and split them into SGD steps, validation pass and the environment's own work.

The environment's overhead is everything in a step that is neither the ``decision_interval`` SGD steps
(including their one host sync) nor the validation pass: applying the action, building the observation
and the info dict. The target is at most 5% of the SGD steps' time.

    LR_ENV_DATA_DIR=PATH python benchmarks/bench_env.py --preset cpu --episodes 2
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from lr_env import LrControlEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="environment preset (default: cpu)")
    parser.add_argument("--episodes", type=int, default=2, help="episodes to time (default: 2)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 parquet directory (default: $LR_ENV_DATA_DIR)")
    args = parser.parse_args()

    env = LrControlEnv(args.preset, device=args.device, data_dir=args.data_dir)
    rng = np.random.default_rng(0)
    totals, trains, validations = [], [], []
    for episode in range(args.episodes):
        env.reset(seed=episode)
        terminated = False
        while not terminated:
            action = rng.uniform(-0.2, 0.2, env.action_space.shape).astype(np.float32)
            _, _, terminated, _, info = env.step(action)
            timing = info["timing"]
            totals.append(timing.total)
            trains.append(timing.train)
            validations.append(timing.validation)

    total, train, validation = sum(totals), sum(trains), sum(validations)
    overhead = total - train - validation
    config = env.config
    print(f"preset {config.preset}, device {env.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{len(totals)} steps of {config.decision_interval} SGD steps, validation on {config.reward_val_size} images")
    print(f"median step {statistics.median(totals):.3f} s: SGD {statistics.median(trains):.3f} s, "
          f"validation {statistics.median(validations):.3f} s")
    print(f"validation share of step time: {validation / total:.1%}")
    print(f"environment overhead beyond SGD and validation: {overhead / train:.2%} of SGD time (target <= 5%)")


if __name__ == "__main__":
    main()
