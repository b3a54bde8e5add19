"""`gradcheck`: compare dp's gradients with central finite differences, in float64.

(The module has another name than the function so that ``dp.gradcheck`` is the function.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dp.node import Node, as_value

DIRECTION_STREAM = 1_000_003  # the projection's own random stream, apart from any data drawn with `seed`


class GradcheckError(AssertionError):
    """dp's gradient and the finite-difference estimate disagree beyond the tolerance."""


def gradcheck(
    f: Callable[..., Node],
    *arrays: Any,
    eps: float = 1e-6,
    tol: float = 1e-6,
    seed: int | None = 0,
) -> float:
    """Check the gradient of ``f`` at ``arrays`` against central finite differences.

    ``f`` takes one Node per array and returns a Node. The arrays are converted
    to float64 Nodes (by `Node`'s conventions: a 1-D array is a column) named
    ``arg0``, ``arg1``, ... To check every entry of the Jacobian at once, the
    output is projected on a fixed random direction ``u``: dp's
    ``f(...).grad(u)`` is compared with ``(sum(u * f(x + eps)) - sum(u * f(x - eps))) / (2 eps)``,
    one input element at a time.

    The error for one argument is ``max |analytic - numeric| / max(|analytic|, |numeric|)``
    (largest magnitudes over the array; 0 when both gradients are 0). Returns the
    worst error over the arguments; raises `GradcheckError` (an ``AssertionError``)
    with a report of each argument when it exceeds ``tol``.

    >>> import numpy as np
    >>> gradcheck(lambda x: (x * x).sum(), np.array([1.0, -2.0])) < 1e-6
    True
    """
    values = [np.array(as_value(a), dtype=np.float64, order="C") for a in arrays]  # copies we may perturb
    nodes = [Node(v, name=f"arg{i}") for i, v in enumerate(values)]
    out = f(*nodes)
    if not isinstance(out, Node):
        raise TypeError(f"gradcheck: f must return a Node, not {type(out).__name__}")
    # Not default_rng(seed) itself: data drawn by default_rng(0), the seed students use most, would
    # then be this very direction, and for batch norm, whose output projected on its own x-hat is
    # constant, every gradient would be 0 and the check a comparison of rounding errors.
    stream = np.random.SeedSequence(seed, spawn_key=(DIRECTION_STREAM,))  # seed None: a fresh random direction
    direction = np.random.default_rng(stream).standard_normal(out.shape)
    analytic = out.grad(direction)

    def objective() -> float:
        return float(np.sum(direction * f(*[Node(v) for v in values]).value))

    rows, worst = [], 0.0
    for i, v in enumerate(values):
        numeric = np.empty_like(v)
        flat, flat_numeric = v.reshape(-1), numeric.reshape(-1)  # views: perturbing flat perturbs v
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = objective()
            flat[j] = original - eps
            minus = objective()
            flat[j] = original
            flat_numeric[j] = (plus - minus) / (2 * eps)
        exact = analytic.get(f"arg{i}", np.zeros_like(v))
        error, where = _relative_error(exact, numeric)
        worst = max(worst, error)
        rows.append(
            f"  arg{i} shape {v.shape}: relative error {error:.3g}"
            + (f", worst at {where}: dp {exact[where]:.10g}, finite differences {numeric[where]:.10g}" if where else "")
        )
    if worst > tol:
        raise GradcheckError(
            f"gradcheck: dp's gradient differs from finite differences (tolerance {tol:g}):\n" + "\n".join(rows)
        )
    return worst


def _relative_error(exact: np.ndarray, numeric: np.ndarray) -> tuple[float, tuple[int, ...] | None]:
    scale = max(np.abs(exact).max(initial=0.0), np.abs(numeric).max(initial=0.0))
    if scale == 0:
        return 0.0, None
    difference = np.abs(exact - numeric)
    where = tuple(int(k) for k in np.unravel_index(np.argmax(difference), difference.shape))
    return float(difference[where] / scale), where
