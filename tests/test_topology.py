"""Topology and distance-map losses, skeletons and clDice against MONAI, SciPy and scikit-image.

Each comparison batches its generated cases into one call (one compilation per
shape): the parity batches hold empty and full masks, one-pixel-wide lines,
random blobs and (where the peer takes them) soft labels.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg

torch = pytest.importorskip("torch")
monai_losses = pytest.importorskip("monai.losses")
ndimage = pytest.importorskip("scipy.ndimage")
skimage_morphology = pytest.importorskip("skimage.morphology")

TOL = 1e-5


def _masks(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """``n`` binary masks: empty, full, 1-pixel lines, points, random blobs."""
    out = np.zeros((n, *shape), bool)
    for i in range(n):
        kind = i % 6
        if kind == 1:
            out[i] = True
        elif kind == 2:  # a one-pixel-wide line along a random axis
            along = rng.integers(len(shape))
            idx = tuple(slice(None) if a == along else rng.integers(s) for a, s in enumerate(shape))
            out[i][idx] = True
        elif kind == 3:
            out[i][tuple(rng.integers(s) for s in shape)] = True
        elif kind in (4, 5):
            blob = rng.random(shape) < rng.uniform(0.2, 0.7)
            out[i] = ndimage.binary_opening(blob) if kind == 4 else blob
    return out


def _cases(seed: int, n: int, shape: tuple[int, ...], soft: bool = False):
    """Logits ``[n, *shape, 2]`` (moderate margins) and one-hot / soft labels."""
    rng = np.random.default_rng(seed)
    fg = _masks(rng, n, shape)
    y = np.stack([~fg, fg], -1).astype(np.float32)
    if soft:
        y = np.clip(y * 0.8 + 0.1 + rng.uniform(-0.1, 0.1, y.shape), 0, 1).astype(np.float32)
        y[..., 0] = 1 - y[..., 1]
    x = (rng.normal(size=(*y.shape,)) * 2 + 2 * (2 * y - 1)).astype(np.float32)
    return x, y


def _monai(loss, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-example values and the gradient of their sum, channels-last."""
    xt = torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)
    yt = torch.tensor(np.moveaxis(y, -1, 1))
    v = loss(xt, yt)
    if v.ndim:
        v = v.reshape(v.shape[0], -1).mean(1)  # HausdorffDTLoss "none" keeps [B, C, 1...]
    v.sum().backward()
    return v.detach().numpy(), np.moveaxis(xt.grad.numpy(), 1, -1)


def _values_and_grad(fn, x, y, *, mean=False, **kw):
    """Values of ``fn`` and the gradient of their sum (or mean), traced (call under jit)."""

    def total(a):
        values = fn(a, y, **kw)
        return (jnp.mean(values) if mean else jnp.sum(values)), values

    (_, values), grad = jax.value_and_grad(total, has_aux=True)(x)
    return values, grad


def _check(ours, loss, x, y, *, mean=False):
    """Our values and gradient against MONAI's."""
    values, grad = ours
    ref_v, ref_g = _monai(loss, x, y)
    np.testing.assert_allclose(np.mean(values) if mean else values, ref_v, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(grad, ref_g, rtol=TOL, atol=TOL)


PARITY = [
    (
        "cldice",
        lambda x, y: jaxseg.soft_cldice_loss(x, y, average="micro"),
        lambda: monai_losses.SoftclDiceLoss(softmax=True, reduction="none"),
        True,
    ),
    (
        "cldice_iter1_fg",
        lambda x, y: jaxseg.soft_cldice_loss(
            x, y, average="micro", iterations=1, smooth=0.5, class_weights=[0.0, 1.0]
        ),
        lambda: monai_losses.SoftclDiceLoss(
            iter_=1,
            smooth_nr=0.5,
            smooth_dr=0.5,
            softmax=True,
            include_background=False,
            reduction="none",
        ),
        True,
    ),
    (
        "dice_cldice",
        lambda x, y: jaxseg.soft_cldice_loss(x, y, average="micro", dice_weight=0.7),
        lambda: monai_losses.SoftDiceclDiceLoss(alpha=0.3, softmax=True),  # mean only
        False,  # MONAI's Dice takes the product form for soft labels; ours the L1 form
    ),
    (
        "hausdorff",
        lambda x, y: jaxseg.hausdorff_dt_loss(x, y),
        lambda: monai_losses.HausdorffDTLoss(
            softmax=True, include_background=True, reduction="none"
        ),
        True,
    ),
    (
        "hausdorff_alpha_fg",
        lambda x, y: jaxseg.hausdorff_dt_loss(x, y, alpha=1.3, class_weights=[0.0, 1.0]),
        lambda: monai_losses.HausdorffDTLoss(alpha=1.3, softmax=True, reduction="none"),
        True,
    ),
]


WITH_3D = ("cldice", "hausdorff")


def _parity_cases(soft):
    x, y = _cases(1, 60, (12, 14))
    if soft:
        xs, ys = _cases(3, 24, (12, 14), soft=True)
        x, y = np.concatenate([x, xs]), np.concatenate([y, ys])
    return x, y


@functools.cache
def _parity_ours():
    """Values and gradients of every form of :data:`PARITY`, 2-D and 3-D, from ONE
    jitted call (one compilation for all forms instead of one per form and shape)."""
    data = {
        "hard": _parity_cases(False),
        "soft": _parity_cases(True),
        "3d": _cases(2, 12, (6, 7, 5)),
    }

    @jax.jit
    def run(data):
        out = {}
        for name, fn, _, soft in PARITY:
            mean = name == "dice_cldice"
            out[name] = _values_and_grad(fn, *data["soft" if soft else "hard"], mean=mean)
            if name in WITH_3D:
                out[name + " 3d"] = _values_and_grad(fn, *data["3d"], mean=mean)
        return out

    return data, jax.device_get(run(data))


@pytest.mark.parametrize(("name", "fn", "make", "soft"), PARITY, ids=[p[0] for p in PARITY])
def test_parity_with_monai(name, fn, make, soft):
    """60 hard 2-D cases (empty, full, lines, points, blobs), 24 soft-label ones
    where MONAI's form matches, and 12 3-D cases for the two main forms."""
    data, ours = _parity_ours()
    mean = name == "dice_cldice"  # MONAI's mixture broadcasts [B] against [B, C] under "none"
    _check(ours[name], make(), *data["soft" if soft else "hard"], mean=mean)
    if name in WITH_3D:
        _check(ours[name + " 3d"], make(), *data["3d"], mean=mean)


def test_monai_batch_pooling_is_axis():
    """MONAI's ``batch=True`` pools the batch: ``axis=(0, 1, 2)``."""
    x, y = _cases(4, 6, (10, 9))
    ref = monai_losses.HausdorffDTLoss(softmax=True, include_background=True, batch=True)
    ref_v, _ = _monai(ref, x, y)
    # jitted: eagerly, each of the loss's operations compiles and dispatches alone
    ours = jax.jit(functools.partial(jaxseg.hausdorff_dt_loss, axis=(0, 1, 2)))(x, y)
    np.testing.assert_allclose(ours, ref_v, rtol=TOL)


def _kervadec_reference(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kervadec et al.'s ``one_hot2dist`` with SciPy, then ``mean(p * phi)`` and its gradient."""
    phi = np.zeros(y.shape, np.float64)
    for i in range(y.shape[0]):
        for c in range(y.shape[-1]):
            pos = y[i, ..., c] > 0.5
            if pos.any() and not pos.all():
                neg = ~pos
                phi[i, ..., c] = (
                    ndimage.distance_transform_edt(neg) * neg
                    - (ndimage.distance_transform_edt(pos) - 1) * pos
                )
    z = x.astype(np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    n = np.prod(y.shape[1:-1])
    per_class = (p * phi).reshape(y.shape[0], -1, y.shape[-1]).sum(1) / n
    # d/dx_k sum_c p_c phi_c = p_k (phi_k - sum_c p_c phi_c), averaged over classes
    grad = p * (phi - (p * phi).sum(-1, keepdims=True)) / n / y.shape[-1]
    return per_class.mean(-1), grad


def test_boundary_loss_against_scipy_reference():
    """72 cases (2-D and 3-D, empty / full / lines / blobs) against SciPy's EDT."""
    cases = [_cases(seed, n, shape) for seed, n, shape in ((5, 60, (12, 14)), (6, 12, (6, 7, 5)))]
    # values and gradients of both shapes in one compiled call
    ours = jax.jit(lambda c: [_values_and_grad(jaxseg.boundary_loss, x, y) for x, y in c])(cases)
    for (x, y), (values, grad) in zip(cases, ours, strict=True):
        ref_v, ref_g = _kervadec_reference(x, y)
        np.testing.assert_allclose(values, ref_v, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(grad, ref_g, rtol=TOL, atol=TOL)


def test_skeletonize_equals_scikit_image():
    """240 masks of one shape in one vmapped call, plus odd shapes and degenerate masks."""
    rng = np.random.default_rng(7)
    blobs = rng.random((240, 24, 21)) < rng.uniform(0.2, 0.9, (240, 1, 1))
    blobs[::3] = [ndimage.binary_closing(b, iterations=2) for b in blobs[::3]]
    blobs[1::7] = [ndimage.binary_dilation(b, iterations=2) for b in blobs[1::7]]
    blobs[0], blobs[1] = False, True
    ours = np.asarray(jax.jit(jax.vmap(jaxseg.skeletonize))(blobs))
    ref = np.stack([skimage_morphology.skeletonize(b) for b in blobs])
    assert (ours == ref).all(), np.nonzero((ours != ref).any((1, 2)))[0]
    for shape in ((1, 1), (1, 9), (9, 2), (3, 3)):
        m = np.ones(shape, bool)
        assert (np.asarray(jaxseg.skeletonize(m)) == skimage_morphology.skeletonize(m)).all()


def _cldice_reference(pred: np.ndarray, label: np.ndarray, c: int) -> np.ndarray:
    """Metrics Reloaded's clDSC with scikit-image skeletons; our empty rule documented."""
    out = np.zeros((pred.shape[0], c))
    for i in range(pred.shape[0]):
        for k in range(c):
            p, g = pred[i] == k, label[i] == k
            sp, sg = skimage_morphology.skeletonize(p), skimage_morphology.skeletonize(g)
            if not sp.any() and not sg.any():
                out[i, k] = np.nan
                continue
            tprec = (sp & g).sum() / sp.sum() if sp.any() else 0.0
            tsens = (sg & p).sum() / sg.sum() if sg.any() else 0.0
            out[i, k] = 2 * tprec * tsens / (tprec + tsens) if tprec + tsens else 0.0
    return out


def test_cldice_against_metrics_reloaded_formula():
    rng = np.random.default_rng(8)
    label = rng.integers(0, 3, (40, 16, 16))
    label[::4] = ndimage.median_filter(label[::4], size=(1, 5, 5))
    pred = np.where(rng.random(label.shape) < 0.15, rng.integers(0, 3, label.shape), label)
    pred[3] = 0  # classes 1 and 2 missing in the prediction
    label[5] = 2

    @jax.jit  # both forms in one compiled call
    def run(pred, label):
        return jaxseg.cldice(pred, label, num_classes=3), jaxseg.cldice(
            pred, label, num_classes=3, ignore_index=0, include_background=True
        )

    ours, out = run(pred, label)
    np.testing.assert_allclose(ours, _cldice_reference(pred, label, 3), rtol=1e-6)
    assert np.isnan(np.asarray(out)[:, 0]).all()


def test_transforms_and_no_callback():
    """jit, vmap (equal to the batched call), grad; the jaxpr holds no callback."""
    x, y = _cases(9, 4, (10, 12))
    labels = jnp.asarray(y[..., 1] > 0.5, jnp.int32)
    fns = (jaxseg.soft_cldice_loss, jaxseg.hausdorff_dt_loss, jaxseg.boundary_loss)
    for fn in fns:
        jaxpr = str(jax.make_jaxpr(jax.grad(lambda a, fn=fn: jnp.sum(fn(a, labels))))(x))
        assert "callback" not in jaxpr

    @jax.jit  # every comparison in one compiled call
    def both(x, labels, masks):
        pairs = [
            (fn(x, labels), jax.vmap(lambda a, b, fn=fn: fn(a[None], b[None])[0])(x, labels))
            for fn in fns
        ]
        # vmap against the unbatched skeletonize run mask by mask (a loop, not vmap)
        return pairs, (jax.vmap(jaxseg.skeletonize)(masks), jax.lax.map(jaxseg.skeletonize, masks))

    pairs, (vmapped, looped) = both(x, labels, jnp.asarray(y[..., 1] > 0.5))
    for fn, (batched, one) in zip(fns, pairs, strict=True):
        np.testing.assert_allclose(one, batched, rtol=1e-6, atol=1e-7, err_msg=fn.__name__)
    np.testing.assert_array_equal(vmapped, looped)


def test_margins_perfect_predictions_and_ignore():
    """Margins 0-100 give finite values and gradients; perfect predictions ~0;
    ``ignore_index`` equals ``where``, and invalid pixels get no gradient."""
    rng = np.random.default_rng(10)
    labels = jnp.asarray(_masks(rng, 6, (12, 12)), jnp.int32)
    onehot = jax.nn.one_hot(labels, 2)
    margins = jnp.array([0.0, 1.0, 30.0, 100.0])
    x = (margins[:, None, None, None, None] * onehot[None]).reshape(-1, 12, 12, 2)
    tiled = jnp.tile(labels, (4, 1, 1))
    xr = jnp.asarray(rng.normal(size=(6, 12, 12, 2)), jnp.float32)
    ignored = labels.at[:, :3].set(255)
    keep = ignored != 255
    fns = (jaxseg.soft_cldice_loss, jaxseg.hausdorff_dt_loss, jaxseg.boundary_loss)

    @jax.jit  # every loss, margin and mask form in one compiled call
    def run(x, xr):
        out = []
        for fn in fns:
            margins = _values_and_grad(fn, x, tiled)
            ignore = _values_and_grad(fn, xr, ignored, ignore_index=255)
            out.append((margins, ignore, fn(xr, jnp.where(keep, ignored, 0), where=keep)))
        return out

    (cl, hd, bd) = run(x, xr)
    for fn, ((v, g), (a, g_ignore), b) in zip(fns, (cl, hd, bd), strict=True):
        assert np.isfinite(v).all() and np.isfinite(g).all(), fn.__name__
        # ignore_index equals where; ignored pixels get no gradient
        np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=fn.__name__)
        assert (np.asarray(g_ignore)[:, :3] == 0).all(), fn.__name__
    # perfect predictions: the last 6 rows (margin 100 = 100 * onehot, per-example values)
    perfect = slice(18, 24)
    assert np.abs(hd[0][0][perfect]).max() == 0
    # the harmonic-mean epsilon leaves 1 - 2 / (2 + 1e-4)
    assert np.abs(cl[0][0][perfect]).max() < 1e-4
    assert (np.asarray(bd[0][0][perfect]) <= 0).all()


def test_named_errors():
    x = jnp.zeros((1, 4, 4, 2))
    y = jnp.zeros((1, 4, 4), jnp.int32)
    with pytest.raises(ValueError, match=r"`logits`.*spatial"):
        jaxseg.hausdorff_dt_loss(jnp.zeros((1, 2, 2, 2, 2, 2)), jnp.zeros((1, 2, 2, 2, 2), int))
    with pytest.raises(ValueError, match=r"`logits`.*spatial"):
        jaxseg.soft_cldice_loss(jnp.zeros((4, 2)), jnp.zeros((4,), int))
    with pytest.raises(ValueError, match="`iterations`"):
        jaxseg.soft_cldice_loss(x, y, iterations=0)
    with pytest.raises(TypeError, match="`iterations`"):
        jaxseg.soft_cldice_loss(x, y, iterations=2.0)
    with pytest.raises(ValueError, match="`alpha`"):
        jaxseg.hausdorff_dt_loss(x, y, alpha=0.0)
    with pytest.raises(ValueError, match="`labels` has 3 classes"):
        jaxseg.boundary_loss(x, jnp.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="`average`"):
        jaxseg.soft_cldice_loss(x, y, average="weighted")
    with pytest.raises(ValueError, match="`dice_weight`"):
        jaxseg.soft_cldice_loss(x, y, dice_weight=1.5)
    with pytest.raises(ValueError, match="`mask`"):
        jaxseg.skeletonize(jnp.zeros((2, 3, 3), bool))
    with pytest.raises(TypeError, match="`mask`"):
        jaxseg.skeletonize(jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="2-D"):
        jaxseg.cldice(jnp.zeros((1, 3, 3, 3), int), jnp.zeros((1, 3, 3, 3), int), num_classes=2)
