"""Peak training memory of LoRA / QLoRA fine-tuning, estimated part by part from the model's shapes.

Every part is counted from what the code that trains actually keeps (transformers' Llama/Qwen2 layers, PEFT's LoRA
layers, TRL 1.16's SFTTrainer and mathtune's speed levers in train/fast.py), so each line can be checked by hand;
`benchmarks/memory_estimate.py` compares the total with the peak measured on CPU. Sizes are bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mathtune.plan.arch import Arch

GIB = 1024**3
# bitsandbytes keeps tensors smaller than this in 32-bit state even with an 8-bit optimizer (its min_8bit_size).
BNB_MIN_8BIT_SIZE = 4096
BNB_OPT_BLOCK = 256  # one fp32 absmax per block of 8-bit optimizer state
NF4_BLOCK = 64  # one absmax per 64 weights; double quantisation stores it in 8 bits, one fp32 per 256 absmax
# TRL 1.16 scores tokens through a fused, tiled LM head (trl.trainer.utils.add_fused_lm_head): the (tokens x vocab)
# logits are never materialised, only a tile of TOKEN_CHUNK x VOCAB_CHUNK (trl/kernels/chunked_logprob.py).
TOKEN_CHUNK, VOCAB_CHUNK = 4096, 32768
# Tile-sized tensors alive at once: one with the Triton kernel (GPU); in the torch fallback (CPU) the backward tile
# function holds the tile, y, z, log_p, p, grad, the target mask (1 byte) as float and two products: ~9.25 tiles.
TILES_TRITON, TILES_TORCH = 1.0, 9.25
CUDA_OVERHEAD = 1.0 * GIB  # CUDA context + allocator fragmentation: a rule of thumb, not measured here
ATTN_IN, ATTN_OUT, MLP_IN, MLP_ACT = "attn_in", "attn_out", "mlp_in", "mlp_act"
# Which tensor feeds each projection of a Llama/Qwen2/Mistral decoder layer (modules sharing an input share it).
INPUT_OF = {"q_proj": ATTN_IN, "k_proj": ATTN_IN, "v_proj": ATTN_IN, "o_proj": ATTN_OUT,
            "gate_proj": MLP_IN, "up_proj": MLP_IN, "down_proj": MLP_ACT}


@dataclass
class MemorySettings:
    """What the recipe and the device decide: batch, length, precision, quantisation, optimizer, LoRA."""

    batch: int
    max_length: int
    lora_r: int
    lora_targets: str | list[str] = "all-linear"
    lora_dropout: float = 0.05
    gradient_checkpointing: bool = False
    weight_bytes: int = 4  # mathtune loads the base model in float32 (models.load_model)
    compute_bytes: int = 4  # 2 under bf16/fp16 autocast
    quant: str | None = None  # "nf4" | "fp4" | "int8" | None
    double_quant: bool = True
    optim: str = "adamw_torch"
    gpu: bool = True  # Triton LM-head kernel, fused dropout and CUDA context (else PyTorch's CPU paths)
    # k/v repeated to every query head before SDPA: transformers does it when a padding mask blocks native GQA
    # (integrations/sdpa_attention.py: use_gqa_in_sdpa), mathtune's varlen attention always (train/varlen.py)
    kv_repeat: bool = True
    attention_mask: bool = True  # a 4-D bool mask of batch x length^2 (none with the padding-free speed lever)
    # LM head: mathtune's compact head (train/fast.py: logits and loss at labelled positions only) or TRL's fused head
    compact_head: bool = True


@dataclass
class Part:
    """One line of the estimate."""

    name: str
    bytes: float
    note: str = ""


@dataclass
class Estimate:
    """The parts and their total; `unresolved` says what could not be estimated."""

    parts: list[Part] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Sum of the parts, in bytes."""
        return sum(p.bytes for p in self.parts)

    def get(self, name: str) -> float:
        """Bytes of the part called `name` (0 when absent)."""
        return sum(p.bytes for p in self.parts if p.name == name)


def is_lora_target(name: str, targets: str | list[str]) -> bool:
    """PEFT's matching: 'all-linear' is every linear layer but the LM head; a list matches the name's last parts."""
    if targets == "all-linear":
        return not name.endswith("lm_head")
    if isinstance(targets, str):
        import re

        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def lora_shapes(arch: Arch, targets: str | list[str]) -> list[tuple[str, int, int]]:
    """The linear layers LoRA attaches to."""
    return [lin for lin in arch.linears if is_lora_target(lin[0], targets)]


def weight_bytes(arch: Arch, s: MemorySettings) -> tuple[float, str]:
    """Base weights: 4-bit/8-bit linear layers (the LM head stays unquantised) plus the rest at the load dtype."""
    quantisable = sum(i * o for name, i, o in arch.linears if not name.endswith("lm_head"))
    if s.quant in ("nf4", "fp4"):
        constants = (1 + 4 / 256) if s.double_quant else 4  # bytes per block of 64 for its absmax
        q_bytes = quantisable * 0.5 + quantisable / NF4_BLOCK * constants
        dq = "with double quantisation" if s.double_quant else "without double quantisation"
        note = (f"{quantisable / 1e9:.2f}B linear weights in 4-bit {s.quant.upper()} {dq}, "
                f"the rest in {s.weight_bytes * 8}-bit")
    elif s.quant == "int8":
        q_bytes = quantisable * 1.0 + sum(o * 4 for name, _, o in arch.linears if not name.endswith("lm_head"))
        note = f"{quantisable / 1e9:.2f}B linear weights in 8-bit (LLM.int8), the rest in {s.weight_bytes * 8}-bit"
    else:
        return arch.params * s.weight_bytes, f"{arch.params / 1e9:.3f}B parameters x {s.weight_bytes} bytes"
    return q_bytes + (arch.params - quantisable) * s.weight_bytes, note


def optimizer_bytes(shapes: list[tuple[str, int, int]], r: int, optim: str) -> tuple[float, str]:
    """AdamW-style state for the LoRA matrices: 2 fp32 states, or 2 one-byte states (+ block absmax) when 8-bit."""
    if optim == "sgd":
        return 0.0, "SGD without momentum keeps no state"
    eight_bit = "8bit" in optim or optim in ("rmsprop_bnb",)
    total = 0.0
    for _, i, o in shapes:
        for n in (r * i, r * o):  # lora_A is r x in, lora_B is out x r
            if eight_bit and n >= BNB_MIN_8BIT_SIZE:
                total += 2 * n * (1 + 4 / BNB_OPT_BLOCK)
            else:
                total += 2 * n * 4
    kind = "8-bit" if eight_bit else "32-bit"
    paged = ", paged (may spill to CPU RAM)" if optim.startswith("paged_") else ""
    return total, f"{optim}: two {kind} states per LoRA parameter{paged}"


def layer_activation_bytes(arch: Arch, s: MemorySettings) -> float:
    """Bytes one decoder layer keeps for backward, per token (Llama/Qwen2-style layer, LoRA on `s.lora_targets`)."""
    h, i, c = arch.hidden, arch.intermediate, s.compute_bytes
    norms = 2 * h * 4  # each RMSNorm upcasts its input to fp32 and keeps it
    # SDPA keeps q, k, v (k and v repeated to every query head when a padding mask blocks native GQA) and its output
    attention = (2 * arch.q_dim + 2 * (arch.q_dim if s.kv_repeat else arch.kv_dim)) * c
    mlp = 3 * i * c  # SiLU keeps its input; the product keeps SiLU's output and up_proj's output
    dims = {ATTN_IN: h, ATTN_OUT: arch.q_dim, MLP_IN: h, MLP_ACT: i}
    layer0 = [(n, fi, fo) for n, fi, fo in lora_shapes(arch, s.lora_targets) if ".layers.0." in n]
    # A frozen linear keeps nothing for backward; LoRA's A matrix keeps its (dropped-out) input, B keeps A's output.
    # With dropout each module draws its own mask and copy; without, modules fed the same tensor share it.
    inputs = [INPUT_OF.get(n.rsplit(".", 1)[-1], n) for n, _, _ in layer0]
    kept = inputs if s.lora_dropout > 0 else sorted(set(inputs))
    lora = sum(dims.get(k, 0) for k in kept) * c + len(layer0) * s.lora_r * c
    # dropout masks: CUDA's fused dropout keeps a bool mask; the CPU path keeps the scaled noise in the input's dtype
    mask_bytes = 1 if s.gpu else c
    masks = sum(dims.get(k, 0) for k in inputs) * mask_bytes if s.lora_dropout > 0 else 0
    return norms + attention + mlp + lora + masks


def activation_parts(arch: Arch, s: MemorySettings) -> list[Part]:
    """Activations kept for backward, with or without gradient checkpointing, and the LM-head working set."""
    tokens = s.batch * s.max_length
    per_layer = layer_activation_bytes(arch, s) * tokens
    if s.gradient_checkpointing:
        kept = arch.layers * arch.hidden * s.weight_bytes * tokens + per_layer
        note = f"checkpointing: {arch.layers} layer inputs + 1 layer recomputed, {tokens} tokens"
    else:
        kept = arch.layers * per_layer
        note = f"{arch.layers} layers x {per_layer / tokens / 1024:.1f} KiB per token x {tokens} tokens"
    mask = s.batch * s.max_length**2 if s.attention_mask else 0  # the 4-D bool attention mask, shared by all layers
    head_input = tokens * arch.hidden * (s.weight_bytes + 4)  # the head's input copy and its fp32 gradient
    if s.compact_head:
        # every position labelled (the worst case): logits (+ their fp32 copy under autocast), log-softmax output,
        # and in the backward the two fp32 gradients of the loss, all tokens x vocab
        per = 3 * 4 + (s.compute_bytes if s.compute_bytes != 4 else 0)
        head = Part("LM head (compact)", tokens * arch.vocab * per + head_input,
                    f"{tokens} labelled tokens x {arch.vocab} vocab x {per} bytes")
    else:
        tile = min(tokens, TOKEN_CHUNK) * min(arch.vocab, VOCAB_CHUNK)
        tiles = s.compute_bytes * TILES_TRITON if s.gpu else 4 * TILES_TORCH
        head = Part("LM head (TRL fused)", tile * tiles + head_input,
                    f"tiles of {min(tokens, TOKEN_CHUNK)} x {min(arch.vocab, VOCAB_CHUNK)}"
                    + (" (Triton)" if s.gpu else " (torch fallback)"))
    return [Part("activations", kept + mask, note), head]


def estimate_memory(arch: Arch, s: MemorySettings) -> Estimate:
    """The estimate, part by part."""
    est = Estimate()
    w, w_note = weight_bytes(arch, s)
    est.parts.append(Part("weights", w, w_note))
    shapes = lora_shapes(arch, s.lora_targets)
    n_lora = sum(s.lora_r * (i + o) for _, i, o in shapes)
    est.parts.append(Part("LoRA parameters", n_lora * 4, f"{n_lora / 1e6:.2f}M in fp32 on {len(shapes)} layers"))
    est.parts.append(Part("gradients", n_lora * 4, "fp32, LoRA parameters only"))
    o, o_note = optimizer_bytes(shapes, s.lora_r, s.optim)
    est.parts.append(Part("optimizer state", o, o_note))
    unknown = {n.rsplit(".", 1)[-1] for n, _, _ in shapes if n.rsplit(".", 1)[-1] not in INPUT_OF}
    if arch.model_type not in ("llama", "qwen2", "mistral", "qwen3") or unknown:
        est.unresolved.append(f"activations: counted for Llama/Qwen2/Mistral-style layers only, not {arch.model_type}")
    else:
        est.parts.extend(activation_parts(arch, s))
    if s.quant in ("nf4", "fp4", "int8"):
        biggest = max((i * o for n, i, o in arch.linears if not n.endswith("lm_head")), default=0)
        est.parts.append(Part("dequantised weight", biggest * s.compute_bytes, "largest linear layer, transient"))
    if s.gpu:
        est.parts.append(Part("CUDA overhead", CUDA_OVERHEAD, "context + allocator slack (rule of thumb)"))
    return est
