"""Tests of agents.checkpoint: save and load round trips, metadata, and every load error.

One PPO model is trained for a few environment steps on the smoke preset (synthetic CIFAR-10) and
shared by the module. Tests that change a model work on a loaded copy.
"""

from __future__ import annotations

import datetime
import json
import logging
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import VecNormalize

from agents.algorithms import build_model, resolve_hyperparameters
from agents.checkpoint import (
    METADATA_MEMBER,
    VEC_NORMALIZE_MEMBER,
    CheckpointError,
    check_spaces,
    load_checkpoint,
    restore_vec_normalize,
    save_checkpoint,
)
from agents.vec_env import make_vec_env
from lr_env import LrControlEnv
from lr_env.config import config_to_dict, make_config

N_GROUPS = 10  # block granularity
OBS_DIM = 2 * N_GROUPS + 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_cifar_dir, synthetic_cache_dir):
    """A PPO model trained for 4 environment steps, its VecNormalize and its saved checkpoint.

    Module-scoped, so it sets the variables of the ``synthetic_data`` fixture itself.
    """
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LR_ENV_DATA_DIR", str(synthetic_cifar_dir))
        patch.setenv("LR_ENV_CACHE_DIR", str(synthetic_cache_dir))
        config = make_config("smoke", device="cpu")
        venv = VecNormalize(make_vec_env(config, 1, "cpu", torch_threads=1), norm_reward=False)
        hyperparameters = resolve_hyperparameters("ppo", 1, n_steps=4, batch_size=4, n_epochs=1)
        model = build_model(hyperparameters, venv, seed=0)
        model.learn(4)
        path = save_checkpoint(
            tmp_path_factory.mktemp("checkpoint") / "ckpt.zip", model, config, venv, extra={"note": "test"}
        )
        rng = np.random.default_rng(0)
        spread = np.sqrt(venv.obs_rms.var) + 0.1
        raw_obs = rng.normal(venv.obs_rms.mean, spread, size=(8, OBS_DIM)).astype(np.float32)
        yield SimpleNamespace(config=config, venv=venv, model=model, path=path, raw_obs=raw_obs)
        venv.close()
    torch.set_num_threads(threads)


def rewrite_zip(source: Path, target: Path, replace: dict[str, bytes | None]) -> Path:
    """Copy the zip ``source`` to ``target``, replacing members (None drops a member)."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        for name in original.namelist():
            if name in replace:
                continue
            copy.writestr(name, original.read(name))
        for name, data in replace.items():
            if data is not None:
                copy.writestr(name, data)
    return target


def stored_metadata(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(METADATA_MEMBER))


def test_round_trip_same_actions(trained):
    checkpoint = load_checkpoint(trained.path)

    assert checkpoint.algorithm == "ppo"
    for obs in trained.raw_obs:
        expected, _ = trained.model.predict(trained.venv.normalize_obs(obs), deterministic=True)
        actual = checkpoint.predict(obs)
        assert actual.shape == (N_GROUPS,)
        np.testing.assert_array_equal(actual, expected)


def test_normalize_obs_matches_vec_normalize(trained):
    checkpoint = load_checkpoint(trained.path)

    np.testing.assert_allclose(
        checkpoint.normalize_obs(trained.raw_obs), trained.venv.normalize_obs(trained.raw_obs), rtol=1e-6
    )
    assert checkpoint.clip_obs == trained.venv.clip_obs
    assert checkpoint.epsilon == trained.venv.epsilon


def test_metadata_round_trip(trained):
    checkpoint = load_checkpoint(trained.path)
    metadata = checkpoint.metadata

    assert checkpoint.env_config == trained.config
    assert metadata["env_config"] == json.loads(json.dumps(config_to_dict(trained.config)))
    assert metadata["env_preset"] == "smoke"
    assert metadata["env_overrides"] == {"device": "cpu"}
    assert metadata["granularity"] == "block"
    assert metadata["num_timesteps"] == trained.model.num_timesteps == checkpoint.num_timesteps
    assert metadata["observation_shape"] == [OBS_DIM]
    assert metadata["action_shape"] == [N_GROUPS]
    assert metadata["extra"] == {"note": "test"}
    assert set(metadata["versions"]) >= {"torch", "gymnasium", "stable_baselines3", "lr_env"}
    assert datetime.datetime.fromisoformat(metadata["created"]).tzinfo is not None
    assert isinstance(metadata["command_line"], str)


def test_metadata_describes_observation(trained):
    metadata = load_checkpoint(trained.path).metadata
    layout = metadata["observation_layout"]

    assert [entry["name"] for entry in layout] == [
        "log_grad_norm",
        "log_learning_rate",
        "log_train_loss",
        "val_loss",
        "budget_fraction",
    ]
    assert layout[0]["start"] == 0
    assert all(first["stop"] == second["start"] for first, second in zip(layout, layout[1:], strict=False))
    assert layout[-1]["stop"] == OBS_DIM
    assert len(metadata["observation_names"]) == OBS_DIM
    assert metadata["observation_names"][0] == "log_grad_norm/stem"


def test_rebuilt_env_matches_checkpoint(trained, synthetic_data):
    checkpoint = load_checkpoint(trained.path)
    env = LrControlEnv(checkpoint.env_config)

    assert env.group_names == checkpoint.group_names
    check_spaces(checkpoint, env)
    obs, _ = env.reset(seed=0)
    assert checkpoint.predict(obs).shape == env.action_space.shape


def test_space_mismatch_raises(trained, synthetic_data):
    checkpoint = load_checkpoint(trained.path)
    env = LrControlEnv(trained.config.replace(granularity="layer"))

    with pytest.raises(CheckpointError) as error:
        check_spaces(checkpoint, env)
    assert "(23,)" in str(error.value)
    assert "(45,)" in str(error.value)


def test_restore_vec_normalize(trained):
    checkpoint = load_checkpoint(trained.path)
    restored = restore_vec_normalize(checkpoint, trained.venv.venv, training=False)

    np.testing.assert_array_equal(restored.obs_rms.mean, trained.venv.obs_rms.mean)
    np.testing.assert_array_equal(restored.obs_rms.var, trained.venv.obs_rms.var)
    assert restored.obs_rms.count == trained.venv.obs_rms.count
    assert restored.norm_reward is False
    np.testing.assert_array_equal(restored.normalize_obs(trained.raw_obs), trained.venv.normalize_obs(trained.raw_obs))


def test_sac_round_trip(trained, tmp_path):
    hyperparameters = resolve_hyperparameters("sac", 1, batch_size=4)
    model = build_model(hyperparameters, trained.venv, seed=0)
    path = save_checkpoint(tmp_path / "sac.zip", model, trained.config, trained.venv)

    checkpoint = load_checkpoint(path)

    assert checkpoint.algorithm == "sac"
    for obs in trained.raw_obs[:3]:
        expected, _ = model.predict(trained.venv.normalize_obs(obs), deterministic=True)
        np.testing.assert_array_equal(checkpoint.predict(obs), expected)


def test_save_without_vec_normalize(trained, tmp_path):
    path = save_checkpoint(tmp_path / "plain.zip", trained.model, trained.config, None)

    checkpoint = load_checkpoint(path)

    assert checkpoint.obs_rms is None
    np.testing.assert_array_equal(checkpoint.normalize_obs(trained.raw_obs), trained.raw_obs)
    with zipfile.ZipFile(path) as archive:
        assert VEC_NORMALIZE_MEMBER not in archive.namelist()


def test_save_leaves_no_temporary_file(trained, tmp_path):
    save_checkpoint(tmp_path / "ckpt.zip", trained.model, trained.config, trained.venv)
    save_checkpoint(tmp_path / "ckpt.zip", trained.model, trained.config, trained.venv)

    assert [path.name for path in tmp_path.iterdir()] == ["ckpt.zip"]


def test_non_finite_model_not_saved(trained, tmp_path):
    path = tmp_path / "ckpt.zip"
    path.write_bytes(trained.path.read_bytes())
    model = load_checkpoint(path).model
    with torch.no_grad():
        next(model.policy.parameters()).fill_(float("nan"))

    with pytest.raises(CheckpointError, match="NaN or infinity"):
        save_checkpoint(path, model, trained.config, trained.venv)
    assert path.read_bytes() == trained.path.read_bytes()


def test_version_change_logs_warning(trained, tmp_path, caplog):
    metadata = stored_metadata(trained.path)
    metadata["versions"]["stable_baselines3"] = "0.0.1"
    path = rewrite_zip(trained.path, tmp_path / "old.zip", {METADATA_MEMBER: json.dumps(metadata).encode()})

    with caplog.at_level(logging.WARNING, logger="agents.checkpoint"):
        load_checkpoint(path)
    assert "stable_baselines3 0.0.1" in caplog.text


def _missing_file(trained, tmp_path):
    return tmp_path / "missing.zip"


def _not_a_zip(trained, tmp_path):
    path = tmp_path / "notes.zip"
    path.write_text("not a zip archive")
    return path


def _zip_without_model(trained, tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "an unrelated archive")
    return path


def _model_without_metadata(trained, tmp_path):
    return rewrite_zip(trained.path, tmp_path / "bare.zip", {METADATA_MEMBER: None})


def _unknown_algorithm(trained, tmp_path):
    metadata = stored_metadata(trained.path)
    metadata["algorithm"] = "dqn"
    return rewrite_zip(trained.path, tmp_path / "dqn.zip", {METADATA_MEMBER: json.dumps(metadata).encode()})


def _corrupt_metadata(trained, tmp_path):
    return rewrite_zip(trained.path, tmp_path / "corrupt.zip", {METADATA_MEMBER: b"{not json"})


def _invalid_env_config(trained, tmp_path):
    metadata = stored_metadata(trained.path)
    metadata["env_config"]["granularity"] = "neuron"
    return rewrite_zip(trained.path, tmp_path / "config.zip", {METADATA_MEMBER: json.dumps(metadata).encode()})


def _truncated_weights(trained, tmp_path):
    return rewrite_zip(trained.path, tmp_path / "weights.zip", {"policy.pth": b"truncated"})


@pytest.mark.parametrize(
    ("make_path", "message"),
    [
        (_missing_file, "checkpoint not found"),
        (_not_a_zip, "not a zip file"),
        (_zip_without_model, "not a stable-baselines3 model"),
        (_model_without_metadata, METADATA_MEMBER),
        (_unknown_algorithm, "unknown algorithm 'dqn'"),
        (_corrupt_metadata, "corrupt"),
        (_invalid_env_config, "invalid stored environment config"),
        (_truncated_weights, "failed to load the ppo model"),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] or None,
)
def test_load_errors(trained, tmp_path, make_path, message):
    path = make_path(trained, tmp_path)

    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    text = str(error.value)
    assert message in text
    assert str(path) in text
    assert "\n" not in text
