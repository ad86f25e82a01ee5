"""Per-layer learning-rate control of CIFAR-10 ResNet-18 training, as a Gymnasium environment.

Importing the package registers ``lr_env/CifarResNet18-v0``::

    import gymnasium
    import lr_env

    env = gymnasium.make("lr_env/CifarResNet18-v0", preset="smoke")
"""

import gymnasium

from lr_env.config import PRESETS, EnvConfig, make_config
from lr_env.env import ENV_ID, LrControlEnv, StepTiming, load_test_split

__all__ = ["ENV_ID", "PRESETS", "EnvConfig", "LrControlEnv", "StepTiming", "load_test_split", "make_config"]
__version__ = "0.1.0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="lr_env.env:LrControlEnv")
