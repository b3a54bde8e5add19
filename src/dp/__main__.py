"""``python -m dp``: a short demo of the engine (the `dp` command comes with training)."""

import numpy as np

import dp

w = dp.Node(np.array([[0.5], [-1.0]]), name="w")
x = dp.Node(np.array([[1.0, 2.0], [3.0, 4.0]]))
loss = (x @ w).tanh().sum()
print("loss =", loss.value.item())
for name, gradient in loss.grad(1).items():
    print(f"d loss / d {name} =", gradient.ravel())
