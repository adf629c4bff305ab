"""Gathers, group sums and the per-edge coupling: the formulations used under ``torch.compile`` equal the eager ones."""

import torch

from equiprop.nn.scatter import gather_rows, scatter_sum


def gather_weight_sum(x, weights, receivers, senders):
    """A convolution's skeleton: ``y_i = sum_j w_ij x_j`` with ``x [n, M, F]``, ``weights [E, 1, F]``."""
    return scatter_sum(gather_rows(x, senders) * weights, receivers, x.shape[0])


def energy_like(x, weights, receivers, senders):
    y = gather_weight_sum(x, weights, receivers, senders)
    y = gather_rows(y, torch.tensor([0, 2, 1]), dim=1)  # a gather along a middle dimension (the gate's)
    return (y.tanh() ** 2).sum()


def loss_with_forces_like(x, weights, receivers, senders):
    """A scalar plus its squared gradient in ``x`` (forces in the loss), as ``equiprop train --compile`` takes them."""
    gradient = torch.func.grad(energy_like)(x, weights, receivers, senders)
    return energy_like(x, weights, receivers, senders) + gradient.pow(2).sum()


class RecordOps:
    """A ``torch.compile`` backend that keeps the traced graph's ops and runs it as is."""

    def __init__(self):
        self.ops = set()

    def __call__(self, graph_module, example_inputs):
        self.ops |= {str(node.target) for node in graph_module.graph.nodes if node.op in ("call_function", "call_method")}
        return graph_module.forward


def test_compiled_formulation_matches_eager_values_and_gradients():
    generator = torch.Generator().manual_seed(0)
    n, n_edges = 7, 30
    x = torch.randn(n, 3, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    weights = torch.randn(n_edges, 1, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    receivers = torch.randint(0, n, (n_edges,), generator=generator)
    senders = torch.randint(0, n, (n_edges,), generator=generator)

    eager_loss = loss_with_forces_like(x, weights, receivers, senders)
    eager_grads = torch.autograd.grad(eager_loss, (x, weights))

    backend = RecordOps()
    compiled = torch.compile(gather_weight_sum, backend=backend, fullgraph=True)
    assert torch.allclose(compiled(x, weights, receivers, senders), gather_weight_sum(x, weights, receivers, senders))
    # the compiled branch ran: gather/scatter_add, no index_select/index_add (atomic adds under Inductor on a CPU)
    assert any("gather" in op for op in backend.ops) and any("scatter_add" in op for op in backend.ops), backend.ops
    assert not any("index_add" in op or "index_select" in op for op in backend.ops), backend.ops

    # and through a double backward (forces in the loss), values and gradients as eager
    compiled_loss_fn = torch.compile(loss_with_forces_like, backend="aot_eager", fullgraph=True)
    compiled_loss = compiled_loss_fn(x, weights, receivers, senders)
    compiled_grads = torch.autograd.grad(compiled_loss, (x, weights))
    assert torch.allclose(compiled_loss, eager_loss, rtol=1e-12)
    for compiled_grad, eager_grad in zip(compiled_grads, eager_grads):
        assert torch.allclose(compiled_grad, eager_grad, rtol=1e-10, atol=1e-12)


def test_eager_scatter_sum_adds_repeated_indices():
    src = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert torch.equal(scatter_sum(src, torch.tensor([1, 1, 0]), 3), torch.tensor([[5.0, 6.0], [4.0, 6.0], [0.0, 0.0]]))
    assert torch.equal(gather_rows(src, torch.tensor([2, 0]), dim=0), src[[2, 0]])
    assert torch.equal(gather_rows(src, torch.tensor([1, 1, 0]), dim=1), src[:, [1, 1, 0]])


def test_compiled_coupling_matches_bmm():
    """SO3Convolution's per-edge coupling: the broadcast sum used under compile on a CPU equals ``bmm``, gradients too."""
    from equiprop.nn.so3conv import couple

    generator = torch.Generator().manual_seed(1)
    coupling = torch.randn(11, 9, 9, dtype=torch.float64, generator=generator, requires_grad=True)
    sender = torch.randn(11, 9, 4, dtype=torch.float64, generator=generator, requires_grad=True)

    def loss(coupling, sender):
        energy = lambda s: couple(coupling, s).sin().sum()  # noqa: E731
        return energy(sender) + torch.func.grad(energy)(sender).pow(2).sum()

    backend = RecordOps()
    compiled = torch.compile(couple, backend=backend, fullgraph=True)
    assert torch.allclose(compiled(coupling, sender), torch.bmm(coupling, sender))
    assert not any("bmm" in op for op in backend.ops), backend.ops  # the compiled branch ran
    eager_grads = torch.autograd.grad(loss(coupling, sender), (coupling, sender))
    compiled_grads = torch.autograd.grad(torch.compile(loss, backend="aot_eager", fullgraph=True)(coupling, sender),
                                         (coupling, sender))
    for compiled_grad, eager_grad in zip(compiled_grads, eager_grads):
        assert torch.allclose(compiled_grad, eager_grad, rtol=1e-10, atol=1e-12)
