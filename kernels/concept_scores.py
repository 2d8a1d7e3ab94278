"""Concept scores: cosine similarity of image embeddings to concept vectors, scaled and biased.

``scores[i, j] = scale * <x_i / |x_i|, c_j / |c_j|> + bias[j]``, the concept activation layer of
LaBo, PCBM and LF-CBM style bottlenecks, optionally reduced to the top-k concepts per image.

Paths
-----
* Triton (CUDA, or ``TRITON_INTERPRET=1``): one fused kernel: a tiled matmul that accumulates the
  squared row norms of both operands from the tiles it already loads, then scales, adds the bias and
  stores once. fp16/bf16 inputs, fp32 accumulation and output.
* PyTorch (reference, fallback): concepts are normalised once (scale folded in, bias appended as an
  extra column), image rows are normalised one cache-sized block at a time and multiplied straight
  into the output, so normalisation costs almost nothing over a bare ``torch.matmul``.

With ``topk`` both paths stream over row blocks and keep only (N, k) values and indices.
"""

from __future__ import annotations

import torch

from ._dispatch import HAS_TRITON, fallback, interpreting, want_triton
from ._utils import KERNEL_DTYPES, as_float_tensor, block_for, check_2d, check_out

EPS = 1e-12  # like torch.nn.functional.normalize: zero rows score 0 instead of NaN

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _concept_scores_kernel(
        x_ptr, c_ptr, bias_ptr, out_ptr,
        N, M, D,
        stride_xn, stride_xd, stride_cm, stride_cd, stride_on, stride_om,
        scale, eps,
        NORMALIZE: tl.constexpr, HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr,
        UPCAST: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
    ):
        # 1-D grid, concept tiles fastest: neighbouring programs reuse the same image rows and
        # cycle through the (small, cache-resident) concept matrix.
        pid = tl.program_id(0)
        num_m = tl.cdiv(M, BLOCK_M)
        pid_n = pid // num_m
        pid_m = pid % num_m
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rd = tl.arange(0, BLOCK_D)
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        ssx = tl.zeros((BLOCK_N,), dtype=tl.float32)
        ssc = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for k0 in range(0, D, BLOCK_D):
            kd = k0 + rd
            x = tl.load(
                x_ptr + rn[:, None] * stride_xn + kd[None, :] * stride_xd,
                mask=(rn[:, None] < N) & (kd[None, :] < D), other=0.0,
            )
            c = tl.load(
                c_ptr + rm[:, None] * stride_cm + kd[None, :] * stride_cd,
                mask=(rm[:, None] < M) & (kd[None, :] < D), other=0.0,
            )
            if UPCAST:
                x = x.to(tl.float32)
                c = c.to(tl.float32)
            acc = tl.dot(x, tl.trans(c), acc, input_precision=PRECISION)
            if NORMALIZE:
                xf = x.to(tl.float32)
                cf = c.to(tl.float32)
                ssx += tl.sum(xf * xf, axis=1)
                ssc += tl.sum(cf * cf, axis=1)
        if NORMALIZE:
            inv_x = 1.0 / tl.maximum(tl.sqrt(ssx), eps)
            inv_c = 1.0 / tl.maximum(tl.sqrt(ssc), eps)
            acc = acc * inv_x[:, None] * inv_c[None, :]
        acc = acc * scale
        if HAS_BIAS:
            acc += tl.load(bias_ptr + rm, mask=rm < M, other=0.0).to(tl.float32)[None, :]
        tl.store(
            out_ptr + rn[:, None] * stride_on + rm[None, :] * stride_om, acc,
            mask=(rn[:, None] < N) & (rm[None, :] < M),
        )


def _launch(x, c, bias, out, scale: float, normalize: bool) -> torch.Tensor:
    """Run the Triton kernel on rows ``x`` (n, d) against ``c`` (M, d) into ``out`` (n, M)."""
    n, d = x.shape
    m = c.shape[0]
    block_n, block_m, block_d = block_for(n, 128), block_for(m, 128), block_for(d, 64)
    grid = (triton.cdiv(n, block_n) * triton.cdiv(m, block_m),)
    # Mixed dtypes multiply in fp32 (no silent rounding of the fp32 operand to half precision).
    # The CPU interpreter's bf16 tl.dot returns garbage (triton 3.8), so it multiplies in fp32 too;
    # products of bf16 numbers are exact in fp32, so the result is the same.
    upcast = x.dtype != c.dtype or (x.dtype == torch.bfloat16 and interpreting())
    if upcast or x.dtype == torch.float32:
        precision = "ieee" if interpreting() else "tf32x3"
    else:
        precision = "tf32"  # ignored for fp16/bf16 operands
    _concept_scores_kernel[grid](
        x, c, bias if bias is not None else out, out,
        n, m, d,
        x.stride(0), x.stride(1), c.stride(0), c.stride(1), out.stride(0), out.stride(1),
        float(scale), EPS,
        NORMALIZE=normalize, HAS_BIAS=bias is not None, PRECISION=precision, UPCAST=upcast,
        BLOCK_N=block_n, BLOCK_M=block_m, BLOCK_D=block_d,
        num_warps=8 if block_n * block_m >= 128 * 128 else 4, num_stages=3,
    )
    return out


def concept_scores_reference(images, concepts, scale=1.0, bias=None, normalize=True):
    """Straightforward float64 oracle (tests): normalise, multiply, scale, add bias."""
    x, c = images.double(), concepts.double()
    if normalize:
        x = torch.nn.functional.normalize(x, dim=1, eps=EPS)
        c = torch.nn.functional.normalize(c, dim=1, eps=EPS)
    s = scale * (x @ c.T)
    return s if bias is None else s + bias.double()


def _torch_concept_matrix(concepts, scale, bias, normalize) -> torch.Tensor:
    """Concepts normalised once, scale folded in, bias appended as column d: (M, d[+1]) fp32."""
    c = concepts.float()
    if normalize:
        c = c / torch.linalg.vector_norm(c, dim=1, keepdim=True).clamp_min(EPS)
    c = c * float(scale)
    if bias is not None:
        c = torch.cat([c, bias.float().reshape(-1, 1)], dim=1)
    return c.contiguous()


def _row_block(d: int, m: int) -> int:
    """Rows per block: the normalised copy (~1 MiB) and one score block stay cache/RAM friendly."""
    return max(256, min(4096, (1 << 20) // max(4 * d, 1), (1 << 26) // max(4 * m, 1)))


def _torch_blocks(images, cmat, has_bias, normalize, block):
    """Yield (start, stop, x_block (b, d[+1]) fp32) with rows normalised, ready for ``x @ cmat.T``."""
    n, d = images.shape
    plain = images.dtype == torch.float32 and not normalize and not has_bias
    buf = None if plain else torch.empty(min(block, n), cmat.shape[1], dtype=torch.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        if plain:
            yield start, stop, images[start:stop]
            continue
        xb = buf[: stop - start]
        xb[:, :d].copy_(images[start:stop])
        if normalize:
            norms = torch.linalg.vector_norm(xb[:, :d], dim=1, keepdim=True).clamp_min_(EPS)
            xb[:, :d].div_(norms)
        if has_bias:
            xb[:, d].fill_(1.0)
        yield start, stop, xb


def concept_scores(
    images: torch.Tensor,
    concepts: torch.Tensor,
    *,
    scale: float = 1.0,
    bias: torch.Tensor | None = None,
    normalize: bool = True,
    topk: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Concept activations ``scale * cos(image, concept) + bias`` for every image and concept.

    Parameters
    ----------
    images : Tensor (N, d)
        Image embeddings (float16/bfloat16/float32; numpy arrays and memmaps are wrapped).
    concepts : Tensor (M, d)
        Concept vectors in the same embedding space.
    scale : float
        Multiplies the cosine (e.g. CLIP's logit scale, or LaBo's temperature).
    bias : Tensor (M,), optional
        Per-concept offset added after scaling.
    normalize : bool
        L2-normalise images and concepts (cosine); False gives raw dot products.
    topk : int, optional
        Keep only the ``topk`` highest-scoring concepts per image, streaming over row blocks so the
        N x M matrix is never held.
    out : Tensor (N, M) float32, optional
        Preallocated output (no topk), written in place; saves one N x M allocation.

    Returns
    -------
    Tensor (N, M) float32, or ``(values (N, k) float32, indices (N, k) int64)`` with ``topk``.
    Differentiable (PyTorch path) when an input requires grad and ``topk``/``out`` are not used.
    """
    images = as_float_tensor(images, "images")
    concepts = as_float_tensor(concepts, "concepts")
    check_2d(images, "images")
    check_2d(concepts, "concepts", cols=images.shape[1])
    n, d = images.shape
    m = concepts.shape[0]
    if bias is not None:
        bias = as_float_tensor(bias, "bias")
        if tuple(bias.shape) != (m,):
            raise ValueError(f"bias must have shape ({m},) (one per concept); got {tuple(bias.shape)}.")
    if topk is not None:
        if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= m:
            raise ValueError(f"topk must be an integer in [1, {m}] (number of concepts); got {topk!r}.")
        if out is not None:
            raise ValueError("out= cannot be combined with topk; topk returns new (N, k) tensors.")
    check_out(out, (n, m), images)
    if concepts.device != images.device:
        raise ValueError(f"images are on {images.device} but concepts are on {concepts.device}.")

    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (images, concepts, bias)
    )
    if grad:
        if topk is not None or out is not None:
            raise ValueError("topk= and out= are not differentiable; call without them under autograd.")
        fallback("concept_scores", "inputs require grad")
        return _differentiable(images, concepts, scale, bias, normalize)
    if want_triton("concept_scores", images, concepts):
        if images.dtype in KERNEL_DTYPES and n * m > 0:
            return _triton_scores(images, concepts, scale, bias, normalize, topk, out)
        fallback("concept_scores", f"dtype {images.dtype} or empty input")
    return _torch_scores(images, concepts, scale, bias, normalize, topk, out)


def _differentiable(images, concepts, scale, bias, normalize):
    x, c = images.float(), concepts.float()
    if normalize:
        x = torch.nn.functional.normalize(x, dim=1, eps=EPS)
        c = torch.nn.functional.normalize(c, dim=1, eps=EPS)
    s = float(scale) * (x @ c.T)
    return s if bias is None else s + bias.float()


def _torch_scores(images, concepts, scale, bias, normalize, topk, out):
    n, d = images.shape
    m = concepts.shape[0]
    cmat = _torch_concept_matrix(concepts, scale, bias, normalize)
    block = _row_block(d, m)
    blocks = _torch_blocks(images, cmat, bias is not None, normalize, block)
    if topk is None:
        out = torch.empty(n, m, dtype=torch.float32, device=images.device) if out is None else out
        for start, stop, xb in blocks:
            torch.mm(xb, cmat.T, out=out[start:stop])
        return out
    values = torch.empty(n, topk, dtype=torch.float32, device=images.device)
    indices = torch.empty(n, topk, dtype=torch.int64, device=images.device)
    sbuf = torch.empty(min(block, n), m, dtype=torch.float32, device=images.device)
    for start, stop, xb in blocks:
        sb = sbuf[: stop - start]
        torch.mm(xb, cmat.T, out=sb)
        torch.topk(sb, topk, dim=1, out=(values[start:stop], indices[start:stop]))
    return values, indices


def _triton_scores(images, concepts, scale, bias, normalize, topk, out):
    n, _ = images.shape
    m = concepts.shape[0]
    c = concepts if concepts.dtype in KERNEL_DTYPES else concepts.float()
    b = None if bias is None else bias.float().contiguous()
    if topk is None:
        out = torch.empty(n, m, dtype=torch.float32, device=images.device) if out is None else out
        return _launch(images, c, b, out, scale, normalize)
    values = torch.empty(n, topk, dtype=torch.float32, device=images.device)
    indices = torch.empty(n, topk, dtype=torch.int64, device=images.device)
    block = max(128, min(n, (1 << 28) // max(4 * m, 1)))  # <= 256 MiB of scores at a time
    sbuf = torch.empty(min(block, n), m, dtype=torch.float32, device=images.device)
    for start in range(0, n, block):
        stop = min(start + block, n)
        sb = _launch(images[start:stop], c, b, sbuf[: stop - start], scale, normalize)
        torch.topk(sb, topk, dim=1, out=(values[start:stop], indices[start:stop]))
    return values, indices
