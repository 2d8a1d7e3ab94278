"""Concept scores: cosine similarity of image embeddings to concept vectors, scaled and biased.

``scores[i, j] = scale * <x_i / |x_i|, c_j / |c_j|> + bias[j]``, the concept activation layer of
LaBo, PCBM and LF-CBM style bottlenecks, optionally reduced to the top-k concepts per image.

Paths
-----
* Triton (CUDA, or ``TRITON_INTERPRET=1``): a row-norm pre-pass (inverse norms of images and
  concepts, fp32; it re-reads the N x d inputs, a few % of the bytes of the N x M output), then one
  tiled matmul whose epilogue normalises, scales, adds the bias and stores each score once. Keeping
  the norms out of the K loop leaves the dot operands on the tensor-core path. fp16/bf16 inputs,
  fp32 accumulation and output.
* PyTorch (reference, fallback): concepts are normalised once (scale folded in, bias appended as an
  extra column), image rows are normalised one cache-sized block at a time and multiplied straight
  into the output, so normalisation costs almost nothing over a bare ``torch.matmul``.

With ``topk`` both paths stream over row blocks and keep only (N, k) values and indices.
"""

from __future__ import annotations

import torch

from ._dispatch import HAS_TRITON, fallback, interpreting, want_triton
from ._utils import KERNEL_DTYPES, as_float_tensor, block_for, check_2d, check_out, release_rows

EPS = 1e-12  # like torch.nn.functional.normalize: zero rows score 0 instead of NaN

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _inv_norm_kernel(
        x_ptr, out_ptr, N, D, stride_n, stride_d, eps,
        BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
    ):
        # 1 / max(|x_r|, eps) for BLOCK_R rows, accumulated in fp32.
        rr = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        ss = tl.zeros((BLOCK_R,), dtype=tl.float32)
        for k0 in range(0, D, BLOCK_D):
            kd = k0 + tl.arange(0, BLOCK_D)
            x = tl.load(
                x_ptr + rr[:, None] * stride_n + kd[None, :] * stride_d,
                mask=(rr[:, None] < N) & (kd[None, :] < D), other=0.0,
            ).to(tl.float32)
            ss += tl.sum(x * x, axis=1)
        tl.store(out_ptr + rr, 1.0 / tl.maximum(tl.sqrt(ss), eps), mask=rr < N)

    @triton.jit
    def _concept_scores_kernel(
        x_ptr, c_ptr, inv_x_ptr, inv_c_ptr, bias_ptr, out_ptr,
        N, M, D,
        stride_xn, stride_xd, stride_cm, stride_cd, stride_on, stride_om,
        scale,
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
        # epilogue: normalise, scale, bias, one store
        if NORMALIZE:
            inv_x = tl.load(inv_x_ptr + rn, mask=rn < N, other=0.0)
            inv_c = tl.load(inv_c_ptr + rm, mask=rm < M, other=0.0)
            acc = acc * inv_x[:, None] * inv_c[None, :]
        acc = acc * scale
        if HAS_BIAS:
            acc += tl.load(bias_ptr + rm, mask=rm < M, other=0.0).to(tl.float32)[None, :]
        tl.store(
            out_ptr + rn[:, None] * stride_on + rm[None, :] * stride_om, acc,
            mask=(rn[:, None] < N) & (rm[None, :] < M),
        )


def _inv_norms(x: torch.Tensor) -> torch.Tensor:
    """Triton pre-pass: (n,) float32 inverse row norms of ``x`` (reads it once)."""
    n, d = x.shape
    out = torch.empty(n, dtype=torch.float32, device=x.device)
    block_r, block_d = block_for(n, 64), block_for(d, 128)
    _inv_norm_kernel[(triton.cdiv(n, block_r),)](
        x, out, n, d, x.stride(0), x.stride(1), EPS, BLOCK_R=block_r, BLOCK_D=block_d, num_warps=4,
    )
    return out


def _launch(x, c, inv_x, inv_c, bias, out, scale: float) -> torch.Tensor:
    """Scores of rows ``x`` (n, d) against ``c`` (M, d) into ``out`` (n, M); ``inv_x``/``inv_c``
    are the inverse norms (None: raw dot products)."""
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
        x, c, inv_x if inv_x is not None else out, inv_c if inv_c is not None else out,
        bias if bias is not None else out, out,
        n, m, d,
        x.stride(0), x.stride(1), c.stride(0), c.stride(1), out.stride(0), out.stride(1),
        float(scale),
        NORMALIZE=inv_x is not None, HAS_BIAS=bias is not None, PRECISION=precision,
        UPCAST=upcast, BLOCK_N=block_n, BLOCK_M=block_m, BLOCK_D=block_d,
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


def _row_block(d: int, m: int, topk: bool = False) -> int:
    """Rows per block. BLAS runs measurably slower on small row counts (4,096 rows: +20% time over
    one big call on the 2-core CI machine), so blocks are large: the fp32 normalised copy is
    <= 64 MiB, and with top-k the score block is <= 256 MiB."""
    limit = (1 << 26) // max(m, 1) if topk else (1 << 24) // max(d, 1)
    return max(1024, min(32768, limit))


def _torch_blocks(images, cmat, has_bias, normalize, block, defer_norm=False):
    """Yield (start, stop, x_block (b, d[+1]) fp32, inv_norms (b, 1) or None) ready for
    ``x @ cmat.T``. Rows are normalised in place unless ``defer_norm``, which instead returns the
    inverse norms for the caller to apply to (fewer) outputs."""
    n, d = images.shape
    plain = images.dtype == torch.float32 and not normalize and not has_bias
    buf = None if plain else torch.empty(min(block, n), cmat.shape[1], dtype=torch.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        if plain:
            yield start, stop, images[start:stop], None
            continue
        xb = buf[: stop - start]
        xb[:, :d].copy_(images[start:stop])
        inv = None
        if normalize:
            inv = torch.linalg.vector_norm(xb[:, :d], dim=1, keepdim=True).clamp_min_(EPS)
            inv = inv.reciprocal_()
            if not defer_norm:
                xb[:, :d].mul_(inv)
                inv = None
        if has_bias:
            xb[:, d].fill_(1.0)
        yield start, stop, xb, inv


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
    source = images  # a read-only np.memmap gets its pages released block by block
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
    return _torch_scores(images, concepts, scale, bias, normalize, topk, out, source)


def _differentiable(images, concepts, scale, bias, normalize):
    x, c = images.float(), concepts.float()
    if normalize:
        x = torch.nn.functional.normalize(x, dim=1, eps=EPS)
        c = torch.nn.functional.normalize(c, dim=1, eps=EPS)
    s = float(scale) * (x @ c.T)
    return s if bias is None else s + bias.float()


def _torch_scores(images, concepts, scale, bias, normalize, topk, out, source=None):
    n, d = images.shape
    m = concepts.shape[0]
    cmat = _torch_concept_matrix(concepts, scale, bias, normalize)
    block = _row_block(d, m, topk is not None)
    if topk is None:
        out = torch.empty(n, m, dtype=torch.float32, device=images.device) if out is None else out
        for start, stop, xb, _ in _torch_blocks(images, cmat, bias is not None, normalize, block):
            torch.mm(xb, cmat.T, out=out[start:stop])
            release_rows(source, start, stop)
        return out
    values = torch.empty(n, topk, dtype=torch.float32, device=images.device)
    indices = torch.empty(n, topk, dtype=torch.int64, device=images.device)
    sbuf = torch.empty(min(block, n), m, dtype=torch.float32, device=images.device)
    # Without a bias, a row's 1/|x| is a positive factor that keeps the order of its scores: apply
    # it to the k winners instead of the d inputs.
    defer = bias is None
    blocks = _torch_blocks(images, cmat, bias is not None, normalize, block, defer_norm=defer)
    for start, stop, xb, inv in blocks:
        sb = sbuf[: stop - start]
        torch.mm(xb, cmat.T, out=sb)
        torch.topk(sb, topk, dim=1, out=(values[start:stop], indices[start:stop]))
        if inv is not None:
            values[start:stop].mul_(inv)
        release_rows(source, start, stop)
    return values, indices


def _triton_scores(images, concepts, scale, bias, normalize, topk, out):
    n, _ = images.shape
    m = concepts.shape[0]
    c = concepts if concepts.dtype in KERNEL_DTYPES else concepts.float()
    b = None if bias is None else bias.float().contiguous()
    inv_x = _inv_norms(images) if normalize else None
    inv_c = _inv_norms(c) if normalize else None
    if topk is None:
        out = torch.empty(n, m, dtype=torch.float32, device=images.device) if out is None else out
        return _launch(images, c, inv_x, inv_c, b, out, scale)
    values = torch.empty(n, topk, dtype=torch.float32, device=images.device)
    indices = torch.empty(n, topk, dtype=torch.int64, device=images.device)
    block = max(128, min(n, (1 << 28) // max(4 * m, 1)))  # <= 256 MiB of scores at a time
    sbuf = torch.empty(min(block, n), m, dtype=torch.float32, device=images.device)
    for start in range(0, n, block):
        stop = min(start + block, n)
        inv_blk = None if inv_x is None else inv_x[start:stop]
        sb = _launch(images[start:stop], c, inv_blk, inv_c, b, sbuf[: stop - start], scale)
        torch.topk(sb, topk, dim=1, out=(values[start:stop], indices[start:stop]))
    return values, indices
