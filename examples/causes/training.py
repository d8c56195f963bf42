"""micrograd (a scalar autograd engine that builds graphs by keeping each node's parents, as
PyTorch does): a running loss total."""

from micrograd.nn import Neuron

# One neuron: a graph of a dozen Values per step.
model = Neuron(3)


def _loss(n):
    x = [0.1 * (n % 7), 0.2, -0.3]
    return (model(x) - 1.0) ** 2


class Epoch:
    def __init__(self):
        self.losses = []

    def step_leaky(self, n):
        """Leaky: the loss itself is kept (for a plot at the end), so every step's graph (its
        Values, their parents and backward closures) stays. `total += loss` does the same."""
        loss = _loss(n)
        loss.backward()
        self.losses.append(loss)
        return loss.data

    def step_fixed(self, n):
        """Fixed: keep `loss.data`, a float (PyTorch: `loss.item()`, or `loss.detach()`)."""
        loss = _loss(n)
        loss.backward()
        self.losses.append(loss.data)
        return loss.data
