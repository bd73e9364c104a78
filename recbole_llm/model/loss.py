"""Alignment losses of the two LLM recommenders.

* :func:`mmd` -- IDLE-Adapter's layer-wise distribution alignment (Eq. 12): the (biased)
  squared Maximum Mean Discrepancy with a Gaussian kernel ``exp(-||x - y||^2 / (2 rho))``.
  With ``n_kernels > 1`` the bandwidths are ``rho * 2^j`` for j centred on 0, the multi-kernel
  MMD of domain adaptation (DAN); the paper uses one kernel.
* :func:`info_nce` -- RA-Rec's alignment (cosine similarity, temperature, in-batch negatives).

Written by hand because neither torch nor RecBole ships an MMD, and RecBole's losses have
no InfoNCE with a configurable similarity.
"""

import torch
import torch.nn.functional as F


def gaussian_kernel(x, y, bandwidth, n_kernels=1):
    """Mean over the kernels of ``exp(-||x_a - y_b||^2 / (2 rho_j))``: ``[len(x), len(y)]``."""
    dist = torch.cdist(x.float(), y.float()).pow(2)
    offsets = torch.arange(n_kernels, device=x.device, dtype=torch.float32) - (n_kernels - 1) / 2
    rhos = float(bandwidth) * torch.pow(2.0, offsets)
    return torch.exp(-dist.unsqueeze(0) / (2 * rhos.view(-1, 1, 1))).mean(0)


def mmd(x, y, bandwidth=1.0, n_kernels=1):
    """Biased MMD^2 between samples ``x`` [n, d] and ``y`` [m, d] (IDLE-Adapter Eq. 12)."""
    kxx = gaussian_kernel(x, x, bandwidth, n_kernels).mean()
    kyy = gaussian_kernel(y, y, bandwidth, n_kernels).mean()
    kxy = gaussian_kernel(x, y, bandwidth, n_kernels).mean()
    return kxx + kyy - 2 * kxy


def info_nce(anchor, positive, temperature=0.5, ids=None):
    """InfoNCE with cosine similarity: row i of ``anchor`` against row i of ``positive``,
    the other rows of ``positive`` being its negatives; mean over rows. With ``ids`` ([n]),
    row j is not a negative of row i when ``ids[j] == ids[i]`` (the same item twice in a batch)."""
    a = F.normalize(anchor.float(), dim=-1)
    p = F.normalize(positive.float(), dim=-1)
    logits = a @ p.t() / temperature
    if ids is not None:
        same = ids.view(-1, 1) == ids.view(1, -1)
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(a.shape[0], device=a.device)
    return F.cross_entropy(logits, target)
