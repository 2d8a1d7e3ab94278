"""cbm.kernels: the numeric hot spots of concept bottleneck models, as Triton kernels with exact
PyTorch fallbacks.

Each op lives in one file with its Triton kernel(s), a PyTorch reference that is both the CPU path and
the test oracle, and one public function. The path is chosen per call by :func:`use_triton`: Triton
for CUDA tensors (or any tensor under ``TRITON_INTERPRET=1``), PyTorch otherwise; set
``CBM_KERNELS=torch`` to force PyTorch, ``CBM_KERNELS=triton`` to forbid the fallback.

Ops
---
concept_scores          scale * cos(images, concepts) + bias, optionally top-k per image
gumbel_bottleneck_loss  Sparse-CBM's Gumbel-softmax loss over both dimensions (differentiable)
cos3_similarity         Label-free CBM's per-concept cos^3 similarity (differentiable)
elastic_net_prox        gradient step + soft-threshold + L2 shrink
concept_search          top samples of an embedding store for a (weighted) concept query
SparseActivationIndex   inverted index over a sparse model's activations (search without a scan)
"""

if __name__ != "cbm.kernels":  # the repository root is on sys.path: see cbm._source_folders
    from cbm._source_folders import defer_to_installed

    defer_to_installed(__name__)
else:
    from ._dispatch import use_triton
    from .concept_scores import concept_scores
    from .concept_search import concept_search
    from .cos3 import cos3_similarity
    from .elastic_net import elastic_net_prox
    from .gumbel_loss import gumbel_bottleneck_loss
    from .sparse_index import SparseActivationIndex

    __all__ = [
        # scoring and search
        "concept_scores",
        "concept_search",
        "SparseActivationIndex",
        # training losses and updates
        "gumbel_bottleneck_loss",
        "cos3_similarity",
        "elastic_net_prox",
        # dispatch
        "use_triton",
    ]
