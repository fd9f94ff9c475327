"""Linear algebra: products, solves and decompositions.

Primitives
----------
``matmul``
    ``a @ b`` with 1-d operands and broadcast batch dimensions.
``einsum``
    Explicit subscripts without ellipsis (the handler normalises every
    spelling). Both rules are einsums again: the cotangent of operand ``k`` is
    the einsum of ``g`` with the other operands, broadcast over labels only
    operand ``k`` has, and put back on the diagonal with identity matrices
    where operand ``k`` repeats a label (``'ii->'``, ``'ii->i'``).
Solves and decompositions
    ``solve``, ``solve_triangular``, ``inv``, ``det``, ``slogdet`` (two
    outputs, the sign inactive), ``cholesky``, ``eigh``, ``eigvalsh``,
    ``svd``, ``svdvals``, ``pinv``, ``qr``.
    Batched over leading dimensions, as in NumPy. Their forwards are NumPy's
    (``solve_triangular``: scipy's), so a singular matrix raises
    :class:`numpy.linalg.LinAlgError` both when recording and when a tape is
    replayed. The derivatives of ``det`` and ``slogdet`` use ``inv(a)``:
    they raise ``LinAlgError`` at a singular matrix (the value itself is
    fine).
``vecdot``, ``matvec``, ``vecmat``
    NumPy 2's gufuncs (core axes last; no ``axes=`` keyword).

Every rule only calls ``np.*`` functions so that the reverse sweep records
(and higher derivatives work).
"""
import numpy as np

from ..errors import UnsupportedOperation
from .elementwise import UFUNC_OPS
from .registry import Aval, defop, strong, unbroadcast


def _swap(x):
    return np.swapaxes(x, -1, -2)


def _linalg_dtype(*dts):
    """Result dtype of NumPy's LAPACK wrappers: float32 only if every input is float32."""
    dts = [strong(d) for d in dts]
    if all(d == np.float32 for d in dts):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _batch(*shapes):
    return tuple(np.broadcast_shapes(*shapes))


# ------------------------------------------------------------------ matmul
def _matmul_shape(a, b):
    return Aval(np.matmul(np.empty(a.shape, np.bool_), np.empty(b.shape, np.bool_)).shape,
                np.result_type(*(np.dtype(d) if not isinstance(d, type) else d
                                 for d in (a.dtype, b.dtype))))


def _matmul_vjp(needs, g, out, a, b):
    """Cotangents of ``a @ b`` including 1-d operands and batch broadcasting."""
    a_nd, b_nd = np.ndim(a), np.ndim(b)
    a2 = np.reshape(a, (1,) + np.shape(a)) if a_nd == 1 else a
    b2 = np.reshape(b, np.shape(b) + (1,)) if b_nd == 1 else b
    gs = tuple(np.shape(g))         # g as the output of the 2-d (matrix) product
    if b_nd == 1:
        gs = gs + (1,)
    if a_nd == 1:
        gs = gs[:-1] + (1,) + gs[-1:]
    g2 = np.reshape(g, gs) if gs != tuple(np.shape(g)) else g
    ga = gb = None
    if needs[0]:
        ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
        if a_nd == 1:
            ga = np.reshape(ga, ga.shape[:-2] + ga.shape[-1:])
        ga = unbroadcast(ga, np.shape(a))
    if needs[1]:
        gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
        if b_nd == 1:
            gb = np.reshape(gb, gb.shape[:-1])
        gb = unbroadcast(gb, np.shape(b))
    return ga, gb


def _matmul_jvp(t, out, a, b):
    ta, tb = t
    r = None
    if ta is not None:
        r = np.matmul(ta, b)
    if tb is not None:
        r2 = np.matmul(a, tb)
        r = r2 if r is None else r + r2
    if r is not None and r.shape != out.shape:
        r = np.broadcast_to(r, out.shape)
    return r


MATMUL = defop("matmul", np.matmul, shape=_matmul_shape, vjp=_matmul_vjp, jvp=_matmul_jvp)
UFUNC_OPS[np.matmul] = MATMUL    # a ufunc in NumPy 2: reaches __array_ufunc__


# ------------------------------------------------------------------ gufuncs vecdot, matvec, vecmat
def _gufunc_dtype(a, b):
    return np.result_type(strong(a.dtype), strong(b.dtype))


def _sum_terms(terms, shape):
    acc = None
    for t in terms:
        if t is not None:
            acc = t if acc is None else acc + t
    if acc is not None and acc.shape != shape:
        acc = np.broadcast_to(acc, shape)
    return acc


def _bilinear_jvp(uf):
    def jvp(t, out, a, b):
        return _sum_terms([None if t[0] is None else uf(t[0], b),
                           None if t[1] is None else uf(a, t[1])], out.shape)
    return jvp


def _vecdot_vjp(needs, g, out, a, b):
    ge = g[..., None]
    return (unbroadcast(ge * b, np.shape(a)) if needs[0] else None,
            unbroadcast(ge * a, np.shape(b)) if needs[1] else None)


def _matvec_vjp(needs, g, out, A, v):
    return (unbroadcast(g[..., :, None] * v[..., None, :], np.shape(A)) if needs[0] else None,
            unbroadcast(np.vecmat(g, A), np.shape(v)) if needs[1] else None)


def _vecmat_vjp(needs, g, out, v, A):
    return (unbroadcast(np.matvec(A, g), np.shape(v)) if needs[0] else None,
            unbroadcast(v[..., :, None] * g[..., None, :], np.shape(A)) if needs[1] else None)


VECDOT = MATVEC = VECMAT = None
if isinstance(getattr(np, "vecdot", None), np.ufunc):        # NumPy >= 2.0
    VECDOT = defop(
        "vecdot", np.vecdot, vjp=_vecdot_vjp, jvp=_bilinear_jvp(np.vecdot),
        shape=lambda a, b: Aval(_batch(a.shape[:-1], b.shape[:-1]), _gufunc_dtype(a, b)))
    UFUNC_OPS[np.vecdot] = VECDOT
if isinstance(getattr(np, "matvec", None), np.ufunc):        # NumPy >= 2.2
    MATVEC = defop(
        "matvec", np.matvec, vjp=_matvec_vjp, jvp=_bilinear_jvp(np.matvec),
        shape=lambda A, v: Aval(_batch(A.shape[:-2], v.shape[:-1]) + (A.shape[-2],),
                                _gufunc_dtype(A, v)))
    VECMAT = defop(
        "vecmat", np.vecmat, vjp=_vecmat_vjp, jvp=_bilinear_jvp(np.vecmat),
        shape=lambda v, A: Aval(_batch(v.shape[:-1], A.shape[:-2]) + (A.shape[-1],),
                                _gufunc_dtype(v, A)))
    UFUNC_OPS[np.matvec] = MATVEC
    UFUNC_OPS[np.vecmat] = VECMAT


# ------------------------------------------------------------------ einsum
def split_subscripts(subscripts):
    """``'ij,jk->ik'`` -> ``(['ij', 'jk'], 'ik')`` (normalised, explicit form)."""
    ins, out = subscripts.split("->")
    return ins.split(","), out


def label_sizes(ins, shapes):
    """Size of every label, broadcasting size-1 dimensions as NumPy's einsum does."""
    sizes = {}
    for sub, shape in zip(ins, shapes):
        for lab, n in zip(sub, shape):
            m = sizes.get(lab)
            if m is None or m == 1:
                sizes[lab] = n
            elif n != 1 and n != m:
                raise ValueError(f"einsum: operands could not be broadcast together: label "
                                 f"{lab!r} has sizes {m} and {n}")
    return sizes


def _einsum_forward(*ops, subscripts, path):
    r = np.einsum(subscripts, *ops, optimize=list(path) if path else False)
    # NumPy returns views for pure transpositions/diagonals; the op's result must own its memory
    if isinstance(r, np.ndarray) and any(isinstance(o, np.ndarray) and np.may_share_memory(r, o)
                                         for o in ops):
        r = r.copy()
    return r


def _einsum_shape(*avals, subscripts, path):
    ins, out = split_subscripts(subscripts)
    sizes = label_sizes(ins, [a.shape for a in avals])
    return Aval(tuple(sizes[c] for c in out), np.result_type(*(strong(a.dtype) for a in avals)))


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _fresh_letters(used, n):
    free = [c for c in _LETTERS if c not in used]
    if len(free) < n:
        from ..errors import UnsupportedOperation
        raise UnsupportedOperation("np.einsum: the derivative needs more than 52 distinct "
                                   "subscript labels")
    return free[:n]


def _einsum_vjp(needs, g, out, *ops, subscripts, path):
    ins, outs = split_subscripts(subscripts)
    sizes = label_sizes(ins, [np.shape(o) for o in ops])
    res = []
    for k, need in enumerate(needs):
        if not need:
            res.append(None)
            continue
        sub = ins[k]
        shape_k = np.shape(ops[k])
        size_k = dict(zip(sub, shape_k))
        uniq = "".join(dict.fromkeys(sub))
        elsewhere = set(outs).union(*[set(s) for j, s in enumerate(ins) if j != k])
        # labels the other factors carry at full size; the rest are summed or broadcast
        keep = "".join(c for c in uniq if c in elsewhere
                       and not (size_k[c] == 1 and sizes[c] != 1))
        terms = [outs] + [s for j, s in enumerate(ins) if j != k]
        args = [g] + [o for j, o in enumerate(ops) if j != k]
        gk = np.einsum(",".join(terms) + "->" + keep, *args)
        full = tuple(size_k[c] for c in uniq)
        if keep != uniq or tuple(gk.shape) != full:
            gk = np.reshape(gk, tuple(gk.shape[keep.index(c)] if c in keep else 1
                                      for c in uniq))
            gk = np.broadcast_to(gk, full)
        if len(uniq) < len(sub):     # repeated label: the cotangent lives on a diagonal
            fresh = iter(_fresh_letters(set(sub) | set(outs), len(sub) - len(uniq)))
            seen, renamed, eyes, eye_subs = set(), "", [], []
            for c in sub:
                if c in seen:
                    f = next(fresh)
                    renamed += f
                    eye_subs.append(c + f)
                    eyes.append(np.eye(size_k[c], dtype=gk.dtype))
                else:
                    seen.add(c)
                    renamed += c
            gk = np.einsum(",".join([uniq] + eye_subs) + "->" + renamed, gk, *eyes)
        if gk.dtype != ops[k].dtype:
            gk = gk.astype(ops[k].dtype)
        res.append(gk)
    return tuple(res)


def _einsum_jvp(tangents, out, *ops, subscripts, path):
    acc = None
    for k, t in enumerate(tangents):
        if t is None:
            continue
        args = [t if j == k else o for j, o in enumerate(ops)]
        term = np.einsum(subscripts, *args)
        acc = term if acc is None else acc + term
    if acc is not None and acc.shape != out.shape:
        acc = np.broadcast_to(acc, out.shape)
    return acc


EINSUM = defop("einsum", _einsum_forward, shape=_einsum_shape, vjp=_einsum_vjp,
               jvp=_einsum_jvp)


# ------------------------------------------------------------------ solve
def _solve_shape(a, b):
    if len(b.shape) == 1:
        shape = a.shape[:-1]
    else:
        shape = _batch(a.shape[:-2], b.shape[:-2]) + tuple(b.shape[-2:])
    return Aval(tuple(shape), _linalg_dtype(a.dtype, b.dtype))


def _solve_vjp(needs, g, x, a, b):
    vec = np.ndim(b) == 1
    gb_full = np.linalg.solve(_swap(a), g[..., None] if vec else g)   # A^-T g
    ga = gb = None
    if needs[0]:
        xm = x[..., None, :] if vec else _swap(x)
        ga = unbroadcast(-np.matmul(gb_full, xm), np.shape(a))
    if needs[1]:
        gb = unbroadcast(gb_full[..., 0] if vec else gb_full, np.shape(b))
    return ga, gb


def _solve_jvp(t, x, a, b):
    ta, tb = t
    vec = np.ndim(b) == 1
    xm = x[..., None] if vec else x
    rhs = None
    if tb is not None:
        rhs = tb[..., None] if vec else tb
    if ta is not None:
        d = -np.matmul(ta, xm)
        rhs = d if rhs is None else rhs + d
    dx = np.linalg.solve(a, rhs)
    if vec:
        dx = dx[..., 0]
    if dx.shape != x.shape:
        dx = np.broadcast_to(dx, x.shape)
    return dx


SOLVE = defop("solve", np.linalg.solve, shape=_solve_shape, vjp=_solve_vjp, jvp=_solve_jvp)


# ------------------------------------------------------------------ solve_triangular
def _tri_mask(n, dtype, lower):
    """0/1 mask of the triangle (diagonal included) a triangular solve reads."""
    m = np.tri(n, dtype=dtype)
    return m if lower else m.T


#: matrices up to which the interpreter substitutes with scipy, which loops
#: over a stack in Python; a larger stack takes NumPy's batched solve (the
#: same solution up to rounding)
_SCIPY_STACK = 16


def _solve_triangular(a, b, lower):
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        shape = _solve_shape(a, b).shape
        batch = shape[:len(shape) - min(b.ndim, 2)]
        if 0 < int(np.prod(batch, dtype=np.int64)) <= _SCIPY_STACK:
            # substitution (LAPACK trtrs), as the compiled tape
            import scipy.linalg
            return scipy.linalg.solve_triangular(a, b, lower=lower, check_finite=False)
    # a large stack, tracked values of an outer tape (nested differentiation)
    # or device arrays: the general solve of the triangle (it records)
    return np.linalg.solve(a * _tri_mask(a.shape[-1], a.dtype, lower), b)


def _solve_triangular_vjp(needs, g, x, a, b, lower):
    vec = np.ndim(b) == 1
    gb_full = SOLVE_TRIANGULAR.bind(_swap(a), g[..., None] if vec else g,
                                    lower=not lower)                  # T^-T g
    ga = gb = None
    if needs[0]:
        xm = x[..., None, :] if vec else _swap(x)
        mask = _tri_mask(a.shape[-1], gb_full.dtype, lower)
        ga = unbroadcast(-np.matmul(gb_full, xm) * mask, np.shape(a))
    if needs[1]:
        gb = unbroadcast(gb_full[..., 0] if vec else gb_full, np.shape(b))
    return ga, gb


def _solve_triangular_jvp(t, x, a, b, lower):
    ta, tb = t
    vec = np.ndim(b) == 1
    rhs = None
    if tb is not None:
        rhs = tb[..., None] if vec else tb
    if ta is not None:
        d = -np.matmul(ta * _tri_mask(a.shape[-1], ta.dtype, lower),
                       x[..., None] if vec else x)
        rhs = d if rhs is None else rhs + d
    dx = SOLVE_TRIANGULAR.bind(a, rhs, lower=lower)
    if vec:
        dx = dx[..., 0]
    return np.broadcast_to(dx, x.shape) if dx.shape != x.shape else dx


#: ``np.linalg.solve(T, b)`` for T the lower (``lower=True``) or upper
#: triangle of ``a``, diagonal included (the other triangle is never read),
#: with solve's shapes (``b`` one vector when 1-d, else a stack of matrices).
#: Not a NumPy function: cholesky's rules record it, and so does a solve
#: whose matrix is a Cholesky factor (``np_api.linalg.solve``), so that
#: substitution (n^2 per column) replaces a general solve's factorization.
SOLVE_TRIANGULAR = defop("solve_triangular", _solve_triangular,
                         shape=lambda a, b, lower: _solve_shape(a, b),
                         vjp=_solve_triangular_vjp, jvp=_solve_triangular_jvp)


# ------------------------------------------------------------------ inv
def _square_shape(a):
    return Aval(tuple(a.shape), _linalg_dtype(a.dtype))


def _inv_vjp(needs, g, out, a):
    ot = _swap(out)
    return (-np.matmul(np.matmul(ot, g), ot),)


def _inv_jvp(t, out, a):
    return -np.matmul(np.matmul(out, t[0]), out)


INV = defop("inv", np.linalg.inv, shape=_square_shape, vjp=_inv_vjp, jvp=_inv_jvp)


# ------------------------------------------------------------------ det, slogdet
def _batch_shape(a):
    return Aval(tuple(a.shape[:-2]), _linalg_dtype(a.dtype))


def _det_vjp(needs, g, out, a):
    return ((g * out)[..., None, None] * _swap(np.linalg.inv(a)),)


def _det_jvp(t, out, a):
    return out * np.sum(_swap(np.linalg.inv(a)) * t[0], axis=(-2, -1))


DET = defop("det", np.linalg.det, shape=_batch_shape, vjp=_det_vjp, jvp=_det_jvp)


def _slogdet(a):
    return tuple(np.linalg.slogdet(a))


def _slogdet_vjp(needs, g, out, a):
    glog = g[1]            # (the sign is piecewise constant: no cotangent)
    if glog is None:
        return (None,)
    return (glog[..., None, None] * _swap(np.linalg.inv(a)),)


def _slogdet_jvp(t, out, a):
    return None, np.sum(_swap(np.linalg.inv(a)) * t[0], axis=(-2, -1))


#: ``(sign, logabsdet)`` from one LU, as ``np.linalg.slogdet``; the sign has
#: no derivative (piecewise constant).
SLOGDET = defop("slogdet", _slogdet, shape=lambda a: [_batch_shape(a)] * 2,
                vjp=_slogdet_vjp, jvp=_slogdet_jvp, inactive_outputs=(0,))


# ------------------------------------------------------------------ cholesky
def _right_solve(X, T, lower):
    """``X T^-1`` for a lower (``lower``) or upper triangular ``T``: the
    triangular solve of the transposes."""
    return _swap(SOLVE_TRIANGULAR.bind(_swap(T), _swap(X), lower=not lower))


def _masks(n, dtype):
    """(strictly lower, diagonal) 0/1 masks of an n x n matrix, in ``dtype``."""
    return np.tri(n, k=-1, dtype=dtype), np.eye(n, dtype=dtype)


def _phi(x, lower, diag):
    """Lower triangle with the diagonal halved (Murray 2016)."""
    return x * (lower + 0.5 * diag)


def _chol_vjp(needs, g, out, a, upper):
    L, Lbar = (_swap(out), _swap(g)) if upper else (out, g)
    lower, diag = _masks(L.shape[-1], L.dtype)
    P = _phi(np.matmul(_swap(L), Lbar), lower, diag)
    X = SOLVE_TRIANGULAR.bind(_swap(L), P, lower=False)            # L^-T P
    M = _right_solve(X, L, lower=True)                             # L^-T P L^-1
    # NumPy reads only the lower (upper=True: upper) triangle of ``a``
    return (_one_triangle(M, "U" if upper else "L"),)


def _chol_jvp(t, out, a, upper):
    L = _swap(out) if upper else out
    lower, diag = _masks(L.shape[-1], L.dtype)
    da = _symmetric(t[0], "U" if upper else "L")     # the symmetric matrix NumPy factors
    X = SOLVE_TRIANGULAR.bind(L, da, lower=True)                   # L^-1 dA
    inner = _right_solve(X, _swap(L), lower=False)                 # L^-1 dA L^-T
    dl = np.matmul(L, _phi(inner, lower, diag))
    return _swap(dl) if upper else dl


CHOLESKY = defop("cholesky", lambda a, upper: np.linalg.cholesky(a, upper=upper),
                 shape=lambda a, upper: _square_shape(a), vjp=_chol_vjp, jvp=_chol_jvp)


# ------------------------------------------------------------------ eigh
def _eigh(a, UPLO):
    return tuple(np.linalg.eigh(a, UPLO=UPLO))


def _eigh_shape(a, UPLO):
    dt = _linalg_dtype(a.dtype)
    return [Aval(tuple(a.shape[:-1]), dt), Aval(tuple(a.shape), dt)]


def _gaps(w):
    """``F[..., i, j] = 1 / (w_j - w_i)`` off the diagonal, 0 on it: infinite
    for a repeated eigenvalue, where eigenvectors have no derivative."""
    eye = np.eye(w.shape[-1], dtype=w.dtype)
    return 1 / (w[..., None, :] - w[..., :, None] + eye) - eye


def _eigh_vjp(needs, g, out, a, UPLO):
    gw, gV = g
    w, V = out
    Vt = _swap(V)
    eye = np.eye(w.shape[-1], dtype=w.dtype)
    inner = 0 if gw is None else gw[..., None, :] * eye
    if gV is not None:      # (skipped when unused: a repeated eigenvalue is fine then)
        inner = inner + _gaps(w) * np.matmul(Vt, gV)
    return (_one_triangle(np.matmul(np.matmul(V, inner), Vt), UPLO),)


def _one_triangle(M, UPLO):
    """The cotangent of the triangle NumPy reads (lower for ``UPLO='L'``) as
    the symmetric matrix it stands for, given ``M``, that of the matrix."""
    lower, diag = _masks(M.shape[-1], M.dtype)
    abar = (M + _swap(M)) * lower + M * diag
    return _swap(abar) if UPLO == "U" else abar


def _symmetric(t, UPLO):
    """The symmetric tangent that tangent ``t`` of the read triangle stands for."""
    da = _swap(t) if UPLO == "U" else t
    lower, diag = _masks(t.shape[-1], t.dtype)
    return da * (lower + diag) + _swap(da * lower)


def _eigh_jvp(t, out, a, UPLO):
    w, V = out
    X = np.matmul(np.matmul(_swap(V), _symmetric(t[0], UPLO)), V)
    return np.sum(X * np.eye(w.shape[-1], dtype=w.dtype), axis=-1), np.matmul(V, _gaps(w) * X)


#: ``(eigenvalues, eigenvectors)`` of the symmetric matrix that ``a``'s lower
#: (``UPLO='L'``) or upper triangle stands for, as ``np.linalg.eigh``. The
#: eigenvectors' derivative divides by eigenvalue gaps: infinite where an
#: eigenvalue repeats (used only through the eigenvalues, the first
#: derivative is finite there; the second is not).
EIGH = defop("eigh", _eigh, shape=_eigh_shape, vjp=_eigh_vjp, jvp=_eigh_jvp)


def _eigvalsh_vjp(needs, g, w, a, UPLO):
    V = EIGH.bind(a, UPLO=UPLO)[1]
    return (_one_triangle(np.matmul(V * g[..., None, :], _swap(V)), UPLO),)


def _eigvalsh_jvp(t, w, a, UPLO):
    V = EIGH.bind(a, UPLO=UPLO)[1]
    return np.sum(V * np.matmul(_symmetric(t[0], UPLO), V), axis=-2)     # diag(V^T dA V)


#: ``np.linalg.eigvalsh``: the eigenvalues alone, computed as NumPy computes
#: them (LAPACK without eigenvectors: not bit for bit ``eigh``'s); the rules
#: take the eigenvectors from ``eigh``.
EIGVALSH = defop("eigvalsh", lambda a, UPLO: np.linalg.eigvalsh(a, UPLO=UPLO),
                 shape=lambda a, UPLO: _eigh_shape(a, UPLO)[0], vjp=_eigvalsh_vjp,
                 jvp=_eigvalsh_jvp)


# ------------------------------------------------------------------ svd
def _svd(a, full_matrices):
    return tuple(np.linalg.svd(a, full_matrices=full_matrices))


def _svd_shape(a, full_matrices):
    *batch, m, n = a.shape
    k = min(m, n)
    dt = _linalg_dtype(a.dtype)
    batch = tuple(batch)
    mu, nv = (m, n) if full_matrices else (k, k)
    return [Aval(batch + (m, mu), dt), Aval(batch + (k,), dt), Aval(batch + (nv, n), dt)]


def _svd_factors(out):
    """``(U, s, V)`` of a reduced SVD's results ``(U, s, Vh)``; for a square
    matrix a full SVD is the reduced one."""
    U, s, Vh = out
    if U.shape[-1] != s.shape[-1] or Vh.shape[-2] != s.shape[-1]:
        raise UnsupportedOperation(
            "the derivative of np.linalg.svd(a) of a non-square matrix with "
            "full_matrices=True (NumPy's default) is not supported by tapediff: its extra "
            "singular vectors have none. Pass full_matrices=False")
    return U, s, _swap(Vh)


def _svd_jvp(t, out, a, full_matrices):
    U, s, V = _svd_factors(out)
    dS = np.matmul(np.matmul(_swap(U), t[0]), V)
    eye = np.eye(s.shape[-1], dtype=s.dtype)
    ds = np.sum(dS * eye, axis=-1)
    F = _gaps(s * s)                            # 1 / (s_j^2 - s_i^2) off the diagonal
    dSS = dS * s[..., None, :]                  # dS diag(s)
    SdS = s[..., :, None] * dS                  # diag(s) dS
    dU = np.matmul(U, F * (dSS + _swap(dSS)))
    dV = np.matmul(V, F * (SdS + _swap(SdS)))
    m, n = a.shape[-2:]
    if m > n:                                   # the part of dA V outside U's columns
        dAV = np.matmul(t[0], V)
        dU = dU + (dAV - np.matmul(U, np.matmul(_swap(U), dAV))) / s[..., None, :]
    if n > m:
        dAU = np.matmul(_swap(t[0]), U)
        dV = dV + (dAU - np.matmul(V, np.matmul(_swap(V), dAU))) / s[..., None, :]
    return dU, ds, _swap(dV)


def _svd_vjp(needs, g, out, a, full_matrices):
    """The transpose of :func:`_svd_jvp`: ``U S̄ V^T`` plus, for a
    rectangular matrix, the cotangent of the singular vectors' part outside
    the other factor's span."""
    gU, gs, gVh = g
    U, s, V = _svd_factors(out)
    eye = np.eye(s.shape[-1], dtype=s.dtype)
    sbar = 0 if gs is None else gs[..., None, :] * eye
    F = _gaps(s * s)
    m, n = a.shape[-2:]
    abar = 0
    if gU is not None:      # (skipped when unused: repeated singular values are fine then)
        Gu = np.matmul(_swap(U), gU)
        sbar = sbar + (F * (Gu - _swap(Gu))) * s[..., None, :]
        if m > n:
            abar = abar + np.matmul((gU - np.matmul(U, Gu)) / s[..., None, :], _swap(V))
    if gVh is not None:
        gV = _swap(gVh)
        Gv = np.matmul(_swap(V), gV)
        sbar = sbar + s[..., :, None] * (F * (Gv - _swap(Gv)))
        if n > m:
            abar = abar + np.matmul(U / s[..., None, :], _swap(gV - np.matmul(V, Gv)))
    return (abar + np.matmul(np.matmul(U, sbar), _swap(V)),)


#: ``(U, S, Vh)`` of ``np.linalg.svd(a, full_matrices)`` (NumPy's gesdd),
#: batched. The rules need the reduced factors (``full_matrices=False``, or a
#: square matrix); the singular vectors' derivative divides by ``s_j^2 -
#: s_i^2`` (infinite at a repeated singular value; through the singular
#: values alone it is finite there) and, for a rectangular matrix, by ``s``.
SVD = defop("svd", _svd, shape=_svd_shape, vjp=_svd_vjp, jvp=_svd_jvp)


def _svdvals_vjp(needs, g, s, a):
    U, _, Vh = SVD.bind(a, full_matrices=False)
    return (np.matmul(U * g[..., None, :], Vh),)


def _svdvals_jvp(t, s, a):
    U, _, Vh = SVD.bind(a, full_matrices=False)
    return np.sum(U * np.matmul(t[0], _swap(Vh)), axis=-2)          # diag(U^T dA V)


#: ``np.linalg.svd(a, compute_uv=False)``: the singular values alone, as
#: NumPy computes them (gesdd without vectors: not bit for bit ``svd``'s);
#: the rules take the vectors from ``svd``.
SVDVALS = defop("svdvals", lambda a: np.linalg.svd(a, compute_uv=False),
                shape=lambda a: _svd_shape(a, False)[1], vjp=_svdvals_vjp, jvp=_svdvals_jvp)


# ------------------------------------------------------------------ qr
def _qr_shape(a, mode):
    *batch, m, n = a.shape
    k = min(m, n)
    dt = _linalg_dtype(a.dtype)
    qc, rr = (m, m) if mode == "complete" else (k, k)
    return [Aval(tuple(batch) + (m, qc), dt), Aval(tuple(batch) + (rr, n), dt)]


def _qr_factors(out, a):
    Q, R = out
    m, n = a.shape[-2:]
    if Q.shape[-1] != min(m, n):
        raise UnsupportedOperation(
            "the derivative of np.linalg.qr(a, mode='complete') of a tall matrix is not "
            "supported by tapediff: its extra columns of Q have none. Use mode='reduced'")
    return Q, R


def _qr_square_jvp(dA, Q, R):
    """(dQ, dR) for ``A = Q R`` with ``R`` square (m >= n): ``C = Q^T dA R^-1``
    splits into an antisymmetric part (``Q^T dQ``) and an upper triangular
    one (``dR R^-1``)."""
    dAR = _right_solve(dA, R, lower=False)
    C = np.matmul(_swap(Q), dAR)
    low = C * _masks(C.shape[-1], C.dtype)[0]
    upper = C - low + _swap(low)                    # C - (low - low^T)
    return dAR - np.matmul(Q, upper), np.matmul(upper, R)


def _qr_jvp(t, out, a, mode):
    Q, R = _qr_factors(out, a)
    m, n = a.shape[-2:]
    if m >= n:
        return _qr_square_jvp(t[0], Q, R)
    # wide: A = [X | Y] = Q [U | V], X square
    dX, dY = t[0][..., :m], t[0][..., m:]
    dQ, dU = _qr_square_jvp(dX, Q, R[..., :m])
    dV = np.matmul(_swap(Q), dY - np.matmul(dQ, R[..., m:]))
    return dQ, np.concatenate([dU, dV], axis=-1)


def _qr_square_vjp(gQ, gR, Q, R):
    """The transpose of :func:`_qr_square_jvp`: with ``M = R gR^T - gQ^T Q``,
    ``(gQ + Q sym(M)) R^-T``, ``sym`` the symmetric matrix of M's lower
    triangle."""
    M = np.matmul(R, _swap(gR)) - np.matmul(_swap(gQ), Q)
    return _right_solve(gQ + np.matmul(Q, _symmetric(M, "L")), _swap(R), lower=True)


def _qr_vjp(needs, g, out, a, mode):
    Q, R = _qr_factors(out, a)
    gQ = np.zeros_like(Q) if g[0] is None else g[0]
    gR = np.zeros_like(R) if g[1] is None else g[1]
    m, n = a.shape[-2:]
    if m >= n:
        return (_qr_square_vjp(gQ, gR, Q, R),)
    Y, gV = a[..., m:], gR[..., m:]
    gX = _qr_square_vjp(gQ + np.matmul(Y, _swap(gV)), gR[..., :m], Q, R[..., :m])
    return (np.concatenate([gX, np.matmul(Q, gV)], axis=-1),)


#: ``(Q, R)`` of ``np.linalg.qr(a, mode)`` (``'reduced'`` or ``'complete'``;
#: NumPy's geqrf + orgqr), batched. The rules need ``R``'s leading square
#: block invertible (full rank) and the reduced ``Q`` (a tall complete Q's
#: extra columns have no derivative).
QR = defop("qr", lambda a, mode: tuple(np.linalg.qr(a, mode=mode)), shape=_qr_shape,
           vjp=_qr_vjp, jvp=_qr_jvp)


# ------------------------------------------------------------------ pinv
def _pinv_shape(a, rcond, hermitian):
    return Aval(tuple(a.shape[:-2]) + (a.shape[-1], a.shape[-2]), _linalg_dtype(a.dtype))


def _eye_like(n, x):
    return np.eye(n, dtype=x.dtype)


def _pinv_jvp(t, p, a, rcond, hermitian):
    # Golub & Pereyra: where the rank does not change,
    # dP = -P dA P + P P^T dA^T (I - A P) + (I - P A) dA^T P^T P
    # (hermitian: NumPy's eigh reads the lower triangle, standing for the
    # symmetric matrix)
    da = _symmetric(t[0], "L") if hermitian else t[0]
    a = _symmetric(a, "L") if hermitian else a
    m, n = a.shape[-2:]
    pt = _swap(p)
    return (-np.matmul(np.matmul(p, da), p)
            + np.matmul(np.matmul(np.matmul(p, pt), _swap(da)), _eye_like(m, p) - np.matmul(a, p))
            + np.matmul(np.matmul(_eye_like(n, p) - np.matmul(p, a), _swap(da)),
                        np.matmul(pt, p)))


def _pinv_vjp(needs, g, p, a, rcond, hermitian):
    a = _symmetric(a, "L") if hermitian else a
    m, n = a.shape[-2:]
    pt, gt = _swap(p), _swap(g)
    abar = (-np.matmul(np.matmul(pt, g), pt)
            + np.matmul(np.matmul(_eye_like(m, p) - np.matmul(a, p), gt), np.matmul(p, pt))
            + np.matmul(np.matmul(np.matmul(pt, p), gt), _eye_like(n, p) - np.matmul(p, a)))
    return (_one_triangle(abar, "L") if hermitian else abar,)


#: ``np.linalg.pinv(a, rcond, hermitian)`` (NumPy's: an SVD, singular values
#: at most ``rcond`` times the largest dropped). Its rules are the
#: pseudo-inverse's own (Golub & Pereyra 1973), valid where the rank is
#: locally constant, with no division by singular-value gaps: finite at
#: repeated singular values, where a composite through ``svd`` is not.
PINV = defop("pinv", lambda a, rcond, hermitian: np.linalg.pinv(a, rcond=rcond,
                                                                hermitian=hermitian),
             shape=_pinv_shape, vjp=_pinv_vjp, jvp=_pinv_jvp)
