import numpy as np
import pytest
import torch

from l3prune.loss import HardNegativeNLLLoss
from l3prune.loss.utils import load_loss


def reference_loss(q, pos, neg, scale):
    """Mean cross-entropy over the similarity matrix, written out in float64 numpy."""
    q, docs = (
        np.asarray(q, np.float64),
        np.asarray(pos if neg is None else np.concatenate([pos, neg]), np.float64),
    )
    sim = (
        scale
        * (q / np.linalg.norm(q, axis=1, keepdims=True))
        @ (docs / np.linalg.norm(docs, axis=1, keepdims=True)).T
    )
    log_softmax = sim - np.log(np.exp(sim).sum(axis=1, keepdims=True))
    return -np.mean([log_softmax[i, i] for i in range(len(q))])


def reps(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("with_negatives", [True, False])
@pytest.mark.parametrize("scale", [20.0, 50.0, 1.0])
def test_loss_equals_cross_entropy_over_the_similarity_matrix(with_negatives, scale):
    q, pos, neg = reps(6, 16, seed=0), reps(6, 16, seed=1), reps(6, 16, seed=2)
    neg = neg if with_negatives else None
    loss = load_loss("HardNegativeNLLLoss", scale=scale)(q, pos, neg)
    expected = reference_loss(q.numpy(), pos.numpy(), None if neg is None else neg.numpy(), scale)
    assert loss.dtype == torch.float32 and loss.shape == ()
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_default_scale_is_20_and_negatives_may_outnumber_queries():
    q, pos, neg = reps(4, 8, seed=3), reps(4, 8, seed=4), reps(9, 8, seed=5)
    loss_fn = load_loss("HardNegativeNLLLoss")
    assert loss_fn.scale == 20.0 and repr(loss_fn) == "HardNegativeNLLLoss(scale=20.0)"
    assert loss_fn(q, pos, neg).item() == pytest.approx(reference_loss(q, pos, neg, 20.0), rel=1e-6)


def test_the_gradient_is_that_of_the_plain_formula():
    q, pos, neg = (reps(5, 8, seed=s).double().requires_grad_() for s in (6, 7, 8))
    HardNegativeNLLLoss(scale=50.0)(q, pos, neg).backward()
    got = [t.grad.clone() for t in (q, pos, neg)]
    for t in (q, pos, neg):
        t.grad = None
    docs = torch.cat([pos, neg])
    sim = 50.0 * (q / q.norm(dim=1, keepdim=True)) @ (docs / docs.norm(dim=1, keepdim=True)).T
    (sim.logsumexp(dim=1) - sim.diagonal()).mean().backward()
    for g, t in zip(got, (q, pos, neg), strict=True):
        torch.testing.assert_close(g, t.grad, rtol=1e-10, atol=1e-12)


def test_half_precision_inputs_give_a_float32_loss():
    q, pos = reps(4, 8, seed=9).bfloat16(), reps(4, 8, seed=10).bfloat16()
    loss = HardNegativeNLLLoss()(q, pos)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference_loss(q.float(), pos.float(), None, 20.0), rel=1e-5)


def test_queries_and_positives_must_pair_up():
    with pytest.raises(
        ValueError, match=r"^3 queries but 4 positives; each query needs exactly one positive$"
    ):
        HardNegativeNLLLoss()(reps(3, 8, seed=0), reps(4, 8, seed=1))


def test_unknown_loss_name_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"^unknown loss 'InfoNCE'; available: HardNegativeNLLLoss$"):
        load_loss("InfoNCE")
