"""A leaner forward for PEFT's LoRA linear layers on a CPU: one bf16 cast per input, the dropout as one masked fill.

Why by hand: a torch profile of one bf16 training step of the default recipe on a 2-core AMD EPYC Zen4
(benchmarks/results/train_speed.md, "Fused LoRA forward") put dtype casts (`aten::copy_`, 5,439 calls) at 11% and
elementwise multiplies at 11% of the step. Under autocast PEFT's `lora.Linear` casts its fp32 input to bf16 twice
(once for the frozen base matmul, once more after the dropout for `lora_A`), q/k/v (and gate/up) cast the same input
once each, the dropout mask is applied as two multiplies on the fp32 input and `* scaling` runs on the full output.
Here, per layer input, one cast is shared by every LoRA module that reads it (q/k/v read the same normed hidden
state); the mask zeroes dropped elements of the bf16 input in one `masked_fill`; the dropout's 1/(1-p) and LoRA's
scaling multiply the rank-r intermediate (r columns, not the output's); and the LoRA product is added inside the
matmul (`addmm`). Same function, different rounding: the dropout's rescale and the add happen after bf16 rounding
rather than before it (tests/unit/test_fused_lora.py bounds the difference against PEFT's forward). The random
stream is mathtune.train.dropout's (four 16-bit uniforms per 64-bit word).
Only plain LoRA (one active adapter, no DoRA or other variant, not merged, no mixed-adapter batch) takes this path;
anything else falls back to PEFT's own forward.
"""

from __future__ import annotations

import types
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from mathtune.train.dropout import bernoulli_drop_mask


class _SharedCast:
    """The last input cast to the autocast dtype, reused while the same tensor (same version) comes in again."""

    def __init__(self):
        self._ref, self._version, self._cast = None, -1, None

    def __call__(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if self._ref is not None and self._ref() is x and self._version == x._version and self._cast.dtype == dtype:
            return self._cast
        cast = x.detach().to(dtype)  # inside the autograd Function: x's gradient is its own
        self._ref, self._version, self._cast = weakref.ref(x), x._version, cast
        return cast


def _plain_lora(module, kwargs) -> str | None:
    """The one active adapter's name when `module` can take the fused path for this call, else None."""
    if module.disable_adapters or module.merged or kwargs:  # adapter_names (mixed batches) or any other option
        return None
    active = [a for a in module.active_adapters if a in module.lora_A]
    if len(active) != 1 or active[0] in getattr(module, "lora_variant", {}):
        return None
    if getattr(module, "use_dora", {}).get(active[0], False):
        return None
    return active[0]


def _dropout_p(module, adapter: str) -> float:
    layer = module.lora_dropout[adapter]
    return float(getattr(layer, "p", 0.0)) if layer.training else 0.0


class _FusedLoraLinear(torch.autograd.Function):
    """out = x W^T + scale * (mask(x) A^T) B^T in `dtype`, with x's gradient returned in x's dtype (fp32 under
    autocast), so the gradients that q/k/v send to one input add up in fp32 as they do through PEFT's casts."""

    @staticmethod
    def forward(ctx, x, weight, a, b, cast, drop, scale, dtype):
        xc = cast if cast is not None else x.to(dtype)
        flat = xc.reshape(-1, xc.shape[-1])
        dropped = flat.masked_fill(drop.reshape(flat.shape), 0) if drop is not None else flat
        low = (dropped @ a.to(dtype).t()) * scale
        out = torch.addmm(flat @ weight.to(dtype).t(), low, b.to(dtype).t())
        ctx.save_for_backward(dropped, low, drop, weight, a, b)
        ctx.scale, ctx.dtype, ctx.x_dtype, ctx.x_shape = scale, dtype, x.dtype, x.shape
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        dropped, low, drop, weight, a, b = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1]).to(ctx.dtype)
        b_c, a_c = b.to(ctx.dtype), a.to(ctx.dtype)
        grad_low = (g @ b_c) * ctx.scale
        grad_b = (g.t() @ low).to(b.dtype)
        grad_a = (grad_low.t() @ dropped).to(a.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_dropped = grad_low @ a_c
            if drop is not None:
                grad_dropped = grad_dropped.masked_fill(drop.reshape(grad_dropped.shape), 0)
            grad_x = (g @ weight.to(ctx.dtype)).to(ctx.x_dtype) + grad_dropped.to(ctx.x_dtype)
            grad_x = grad_x.view(ctx.x_shape)
        return grad_x, None, grad_a, grad_b, None, None, None, None


def _fused_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    adapter = _plain_lora(self, kwargs) if not args else None
    weight = self.base_layer.weight
    if adapter is None or weight.requires_grad or self.base_layer.bias is not None:
        return self._peft_forward(x, *args, **kwargs)
    dtype, cast = x.dtype, None
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and x.dtype == torch.float32:
        dtype = torch.get_autocast_dtype("cpu")
        cast = self._shared_cast(x, dtype)  # q/k/v read one tensor: cast it once
    p = _dropout_p(self, adapter)
    drop = bernoulli_drop_mask(x.shape, p) if p > 0 else None
    with torch.autocast("cpu", enabled=False):  # the dtypes are chosen here, as autocast would choose them
        return _FusedLoraLinear.apply(x, weight, self.lora_A[adapter].weight, self.lora_B[adapter].weight, cast,
                                      drop, self.scaling[adapter] / (1.0 - p), dtype)


def use_fused_lora(model: nn.Module) -> int:
    """Give every plain PEFT `lora.Linear` (nn.Linear base) the fused forward, one shared cast per model; count."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    shared = _SharedCast()
    done = 0
    for module in model.modules():
        if type(module) is not LoraLinear or type(module.base_layer) is not nn.Linear:
            continue
        if getattr(module, "fan_in_fan_out", False):
            continue
        if "_peft_forward" not in module.__dict__:
            module._peft_forward = module.forward
        module._shared_cast = shared
        module.forward = types.MethodType(_fused_forward, module)
        done += 1
    return done
