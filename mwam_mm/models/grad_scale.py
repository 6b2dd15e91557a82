"""Identity in the forward pass, a scaled gradient in the backward pass."""
import torch


class _ScaleGradient(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged; the gradient flowing back through it times ``scale``
    (0: stop-gradient, but ``x`` stays in the graph for DDP)."""
    if scale == 1.0 or not x.requires_grad:
        return x
    return _ScaleGradient.apply(x, float(scale))
