"""The target functions a request may name: an allowlist, never evaluated code."""

import numpy as np

TARGETS = {"sin": np.sin, "cos": np.cos, "exp": np.exp, "tanh": np.tanh}
