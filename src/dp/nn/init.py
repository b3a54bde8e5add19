"""Weight initializations by name: each draws a (fan_in, fan_out) weight matrix (or a
convolution's kernels, given their fans).

    dp.nn.init.weights("he", rng, 784, 100)                  # N(0, 2 / fan_in)
    dp.nn.init.weights("normal", rng, 784, 100, std=0.01)    # the paper's "small random Gaussian values"

Every rule draws values of mean 0; they differ in the spread, chosen so that the
variance of activations (forward) or of gradients (backward) neither grows nor
shrinks from layer to layer:

    name               distribution                  standard deviation
    zeros              all 0 (every unit the same: a lesson, not a choice)
    normal             N(0, std**2)                  std (given; default 0.01)
    uniform            U(-a, a), a = std * sqrt(3)   std (given; default 0.01)
    glorot, glorot_normal   N(0, s**2)               s = sqrt(2 / (fan_in + fan_out))   (Glorot & Bengio, 2010)
    glorot_uniform     U(-a, a), a = sqrt(6 / (fan_in + fan_out))      the same s
    he, he_normal      N(0, s**2)                    s = sqrt(2 / fan_in)   (He et al., 2015, for ReLU)
    he_uniform         U(-a, a), a = sqrt(6 / fan_in)                   the same s

``xavier_*`` and ``kaiming_*`` are the same rules under the names PyTorch uses.
"""

from __future__ import annotations

import math

import numpy as np

from dp import checks

DEFAULT_STD = 0.01

# name: (distribution, the standard deviation from fan_in and fan_out, or None where std is given)
RULES = {
    "zeros": ("zeros", lambda fan_in, fan_out: 0.0),
    "normal": ("normal", None),
    "uniform": ("uniform", None),
    "glorot": ("normal", lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out))),
    "glorot_normal": ("normal", lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out))),
    "glorot_uniform": ("uniform", lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out))),
    "he": ("normal", lambda fan_in, fan_out: math.sqrt(2 / fan_in)),
    "he_normal": ("normal", lambda fan_in, fan_out: math.sqrt(2 / fan_in)),
    "he_uniform": ("uniform", lambda fan_in, fan_out: math.sqrt(2 / fan_in)),
}
RULES.update({name.replace("glorot", "xavier"): RULES[name] for name in ("glorot_normal", "glorot_uniform")})
RULES.update({name.replace("he", "kaiming"): RULES[name] for name in ("he_normal", "he_uniform")})
NAMES = tuple(RULES)


def check(init: str, std: float | None) -> tuple[str, float | None]:
    """``init`` and ``std`` checked together: a known name, and ``std`` > 0 (finite) given
    only to "normal" and "uniform", whose spread it sets; the others compute their own."""
    checks.OneOf(*NAMES)(init, "init")
    if std is None:
        return init, None
    if RULES[init][1] is not None:
        raise ValueError(
            f"init {init!r} computes its own spread from the layer's size: std is for 'normal' and 'uniform'"
        )
    return init, checks.Real("(0, inf)")(std, "std")


def weights(
    init: str,
    rng: np.random.Generator,
    fan_in: int,
    fan_out: int,
    std: float | None = None,
    shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """A float64 (fan_in, fan_out) weight matrix drawn from ``rng`` by the rule ``init``
    (see the table above), or an array of another ``shape`` drawn by the same rule with the
    fans given: a convolution's kernels (out, in, kh, kw) have fan_in = in * kh * kw and
    fan_out = out * kh * kw (each output reads in * kh * kw inputs; each input reaches out
    * kh * kw outputs), as PyTorch counts them. Raises ``ValueError`` for an unknown name
    or a bad ``std``."""
    init, std = check(init, std)
    distribution, spread = RULES[init]
    s = spread(fan_in, fan_out) if spread is not None else (DEFAULT_STD if std is None else std)
    shape = (fan_in, fan_out) if shape is None else shape
    if distribution == "zeros":
        return np.zeros(shape)
    if distribution == "normal":
        return rng.normal(0.0, s, shape)
    limit = s * math.sqrt(3)  # U(-a, a) has standard deviation a / sqrt(3)
    return rng.uniform(-limit, limit, shape)
