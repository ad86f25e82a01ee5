"""LrControlEnv on the smoke preset: spaces, baseline equivalence, rewards, episode end and seeding."""

import math
import warnings

import gymnasium
import numpy as np
import pytest
import torch

import lr_env
from lr_env import ENV_ID, LrControlEnv
from lr_env.trainer import Trainer

EXPECTED_INFO_KEYS = {
    "learning_rates",
    "multipliers",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "sgd_step",
    "base_lr",
    "diverged",
    "timing",
}


def run_episode(env, policy, seed=0):
    """Run one episode; return observations, rewards, infos and the final terminated/truncated flags."""
    obs, info = env.reset(seed=seed)
    observations, rewards, infos = [obs], [], [info]
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
    return observations, rewards, infos, terminated, truncated


def zeros(env):
    return lambda obs: np.zeros(env.action_space.shape, dtype=np.float32)


@pytest.fixture
def env(synthetic_data):
    return LrControlEnv("smoke")


def test_registered_id_makes_env(synthetic_data):
    env = gymnasium.make(ENV_ID, preset="smoke", granularity="layer")
    assert isinstance(env.unwrapped, LrControlEnv)
    assert env.action_space.shape == (21,)
    assert env.observation_space.shape == (2 * 21 + 3,)


def test_spaces_and_first_observation(env):
    assert env.action_space == gymnasium.spaces.Box(-1, 1, (10,), np.float32)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32
    assert obs.shape == (23,)
    assert env.observation_space.contains(obs)
    assert set(info) == EXPECTED_INFO_KEYS
    np.testing.assert_allclose(obs[10:20], math.log(0.1), rtol=1e-6)
    assert obs[21] == pytest.approx(info["val_loss"])
    assert obs[22] == 0.0


def test_zero_policy_equals_sgd_baseline(env):
    """An all-zero policy ends with exactly the weights of plain fixed-LR SGD through the trainer."""
    _, _, infos, terminated, _ = run_episode(env, zeros(env), seed=5)
    assert terminated
    assert all(np.all(info["learning_rates"] == 0.1) for info in infos)

    config = env.config
    baseline = Trainer(config.trainer_config(0.1), env.train_split, seed=env.trainer.seed)
    baseline.train_steps(config.total_steps)
    for name, tensor in env.trainer.model.state_dict().items():
        assert torch.equal(tensor, baseline.model.state_dict()[name]), name


def test_same_seed_same_trajectory(synthetic_data):
    first, second = LrControlEnv("smoke"), LrControlEnv("smoke")
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(first.config.n_decisions, 10)).astype(np.float32)
    trajectories = []
    for env in (first, second):
        steps = iter(actions)
        observations, rewards, _, _, _ = run_episode(env, lambda obs, s=steps: next(s), seed=11)
        trajectories.append((np.stack(observations), rewards))
    np.testing.assert_array_equal(trajectories[0][0], trajectories[1][0])
    assert trajectories[0][1] == trajectories[1][1]


def test_different_seed_different_start(env):
    first, _ = env.reset(seed=1)
    second, _ = env.reset(seed=2)
    assert not np.array_equal(first, second)


def test_rewards_are_validation_loss_decreases(env):
    observations, rewards, infos, _, _ = run_episode(env, zeros(env), seed=0)
    val_losses = [info["val_loss"] for info in infos]
    for k, reward in enumerate(rewards):
        assert reward == pytest.approx(val_losses[k] - val_losses[k + 1])
    # The return is the decrease over the whole episode.
    assert sum(rewards) == pytest.approx(val_losses[0] - val_losses[-1])
    # A step that lowers validation loss is rewarded more than one that raises it.
    decreases = [a - b for a, b in zip(val_losses, val_losses[1:], strict=False)]
    order = np.argsort(decreases)
    assert np.all(np.diff(np.asarray(rewards)[order]) >= 0)


def test_lower_validation_loss_rewarded_higher(synthetic_data):
    """From the same state, the step that ends with the lower validation loss earns the higher reward.

    At learning rate 0.1 the first steps raise the smoke model's validation loss (batch-norm running
    statistics lag behind), while the minimum learning rate barely changes it.
    """
    env = LrControlEnv("smoke", max_step_factor=100.0, min_multiplier=0.01)
    _, start = env.reset(seed=0)
    _, frozen_reward, _, _, frozen = env.step(-np.ones(10, dtype=np.float32))
    env.reset(seed=0)
    _, trained_reward, _, _, trained = env.step(np.zeros(10, dtype=np.float32))
    raised, lowered = (trained, frozen) if trained["val_loss"] > frozen["val_loss"] else (frozen, trained)
    assert raised["val_loss"] > start["val_loss"]
    reward_of_raised = trained_reward if raised is trained else frozen_reward
    reward_of_lowered = frozen_reward if raised is trained else trained_reward
    assert reward_of_lowered > reward_of_raised
    assert reward_of_raised < 0


def test_accuracy_reward(synthetic_data):
    env = LrControlEnv("smoke", reward="val_accuracy")
    _, rewards, infos, _, _ = run_episode(env, zeros(env), seed=0)
    accuracies = [info["val_accuracy"] for info in infos]
    assert sum(rewards) == pytest.approx(accuracies[-1] - accuracies[0])


def test_budget_end_terminates_not_truncates(synthetic_data):
    env = LrControlEnv("smoke", total_steps=25, decision_interval=10)
    observations, rewards, infos, terminated, truncated = run_episode(env, zeros(env))
    assert len(rewards) == 3
    assert terminated
    assert not truncated
    assert infos[-1]["sgd_step"] == 25
    assert observations[-1][-1] == 1.0


def test_extreme_actions_diverge_with_finite_values(synthetic_data):
    env = LrControlEnv("smoke", max_step_factor=1000.0, max_multiplier=1e8, divergence_penalty=7.0)
    observations, rewards, infos, terminated, truncated = run_episode(
        env, lambda obs: np.ones(10, dtype=np.float32)
    )
    assert terminated
    assert not truncated
    assert infos[-1]["diverged"]
    assert rewards[-1] == -7.0
    assert infos[-1]["sgd_step"] < env.config.total_steps
    for obs in observations:
        assert np.all(np.isfinite(obs))
        assert env.observation_space.contains(obs)
    assert all(math.isfinite(r) for r in rewards)


def test_actions_outside_bounds_are_clipped(synthetic_data):
    first, second = LrControlEnv("smoke"), LrControlEnv("smoke")
    first.reset(seed=0)
    second.reset(seed=0)
    _, _, _, _, info_big = first.step(np.full(10, 5.0, dtype=np.float32))
    _, _, _, _, info_one = second.step(np.ones(10, dtype=np.float32))
    np.testing.assert_array_equal(info_big["learning_rates"], info_one["learning_rates"])
    np.testing.assert_allclose(info_one["learning_rates"], 0.2)


def test_multipliers_clipped_to_bounds(synthetic_data):
    env = LrControlEnv("smoke", max_multiplier=3.0, min_multiplier=0.5)
    env.reset(seed=0)
    action = np.array([1.0] * 5 + [-1.0] * 5, dtype=np.float32)
    for _ in range(2):
        _, _, _, _, info = env.step(action)
    np.testing.assert_allclose(info["multipliers"], [3.0] * 5 + [0.5] * 5)
    np.testing.assert_allclose(info["learning_rates"], 0.1 * info["multipliers"])


def test_base_lr_drawn_from_choices(synthetic_data):
    env = LrControlEnv("smoke", base_lr_choices=(0.01, 0.3))
    drawn = {env.reset(seed=seed)[1]["base_lr"] for seed in range(8)}
    assert drawn == {0.01, 0.3}
    assert env.reset(seed=3)[1]["base_lr"] == env.reset(seed=3)[1]["base_lr"]


def test_base_lr_drawn_from_range(synthetic_data):
    env = LrControlEnv("smoke", base_lr_range=(0.01, 1.0))
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        assert 0.01 <= info["base_lr"] <= 1.0
        np.testing.assert_allclose(obs[10:20], math.log(info["base_lr"]), rtol=1e-5)


def test_env_checkers_pass_without_warnings(synthetic_data):
    from gymnasium.utils.env_checker import check_env as gymnasium_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    # Built through gymnasium.make so the checker finds the spec it looks for.
    env = gymnasium.make(ENV_ID, preset="smoke").unwrapped

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gymnasium_check_env(env)
        sb3_check_env(env)
    assert [str(w.message) for w in caught] == []


def test_env_never_prints(env, capsys):
    run_episode(env, zeros(env))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_unknown_override_rejected(synthetic_data):
    with pytest.raises(ValueError, match="unknown EnvConfig field"):
        LrControlEnv("smoke", widht=8)


def test_unknown_preset_rejected(synthetic_data):
    with pytest.raises(ValueError, match="unknown preset 'tiny'"):
        LrControlEnv("tiny")


def test_presets_are_valid():
    for name, config in lr_env.PRESETS.items():
        assert config.preset == name
        config.validate()
