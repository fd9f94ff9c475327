"""Hand-written value+gradient baselines for ``benchmarks/compare.py``.

Two kinds, for the same programs as ``compare.py``:

* ``np_*``: the gradient derived by hand and written in NumPy. These are the
  *reference*: every library's value and gradient is checked against them
  before it is timed.
* ``c_*``: the same derivative as fused C loops (forward and reverse in one
  pass where the math allows), compiled once through
  :func:`tapediff.runtime.load_or_build` with tapediff's flags (IEEE semantics,
  no ``-ffast-math``), vectorised transcendental calls from glibc's libmvec
  (see ``docs/c-backend-notes.md``, section 2). They stand for what a careful
  programmer would write by hand, i.e. the speed a compiled tape should
  approach.

Each ``c_*`` factory takes the example inputs (and the sizes that are fixed
at compile time in a tape: n, steps), preallocates its outputs and returns
``vg(*inputs) -> (value, grads)``. The input pointers are taken per call
(``ffi.from_buffer``, about 0.2 us per array) because a caller passes new
arrays; the gradient buffers are reused, so the returned arrays are
overwritten by the next call (like ``value_and_grad(..., out=grads)``).

Signatures follow ``compare.py``: ``f(params, *data)`` with the gradient taken
with respect to ``params`` (a scalar, an array, a tuple or a dict).
"""
import numpy as np

# --------------------------------------------------------------------------
# Hand-written NumPy gradients (the reference)


def np_taylor(x, n):
    """sum_{i=1}^n x^i / i and its derivative sum_{i=1}^n x^(i-1).

    Vectorised with a cumulative product instead of ``x ** i`` (pow costs
    ~30 ns per element; the product is exact for x = 0.5 and within n ulp in
    general, far inside the 1e-8 tolerance of the checks).
    """
    i = np.arange(1, n + 1, dtype=np.float64)
    p = np.cumprod(np.full(n, float(x)))            # x^1 .. x^n
    value = np.sum(p / i)
    grad = 1.0 + np.sum(p[:-1])                     # x^0 + x^1 + .. + x^(n-1)
    return value, np.float64(grad)


def np_sin_exp(p, t):
    """sum_{k,i} sin(t_k p_i) exp(-p_{5+i} t_k), gradient w.r.t. p (10,)."""
    T = t[:, None]
    a, b = p[:5], p[5:]
    s, c, e = np.sin(T * a), np.cos(T * a), np.exp(-T * b)
    se = s * e
    g = np.concatenate([np.sum(T * c * e, axis=0), -np.sum(T * se, axis=0)])
    return np.sum(se), g


def np_tanh_cube(x):
    """sum(tanh(x)^3) + x.x: d/dx = 3 t^2 (1 - t^2) + 2 x with t = tanh(x)."""
    t = np.tanh(x)
    t2 = t * t
    return np.sum(t2 * t) + x @ x, 3.0 * t2 * (1.0 - t2) + 2.0 * x


def np_matmul(AB):
    """sum((A @ B)^2) / 2 with C = A @ B: dA = C B^T, dB = A^T C."""
    A, B = AB
    C = A @ B
    return np.sum(C * C) / 2, (C @ B.T, A.T @ C)


def np_gp_nll(theta, X, y, eye):
    """Gaussian-process negative log marginal likelihood and its gradient in
    the log hyperparameters: with K^-1 = W + a a^T... the classic identity
    dNLL/dθ = tr((K^-1 - a a^T) dK/dθ) / 2, a = K^-1 y."""
    sq = np.sum(X * X, axis=1)
    D = sq[:, None] + sq[None, :] - 2 * (X @ X.T)
    Kf = np.exp(theta[0]) * np.exp(-0.5 * D * np.exp(-2 * theta[1]))
    K = Kf + np.exp(theta[2]) * eye
    L = np.linalg.cholesky(K)
    z = np.linalg.solve(L, y)
    value = 0.5 * z @ z + np.sum(np.log(np.diagonal(L)))
    Kinv = np.linalg.inv(K)
    a = Kinv @ y
    W = Kinv - np.outer(a, a)
    dK = (Kf, Kf * D * np.exp(-2 * theta[1]), np.exp(theta[2]) * eye)
    return value, np.array([0.5 * np.sum(W * d) for d in dK])


def np_mlp(w, x, y):
    """tanh hidden layer, softmax cross-entropy averaged over the batch."""
    h = np.tanh(x @ w["W1"] + w["b1"])
    logits = h @ w["W2"] + w["b2"]
    z = logits - np.max(logits, axis=1, keepdims=True)
    ez = np.exp(z)
    se = np.sum(ez, axis=1, keepdims=True)
    logp = z - np.log(se)
    batch = x.shape[0]
    value = -np.sum(logp * y) / batch
    # d loss / d logp = -y / B; through log-softmax: dz = dlogp - softmax * sum(dlogp)
    dlogp = -y / batch
    dz = dlogp - (ez / se) * np.sum(dlogp, axis=1, keepdims=True)
    dh = (dz @ w["W2"].T) * (1.0 - h * h)
    grads = {"W1": x.T @ dh, "b1": np.sum(dh, axis=0), "W2": h.T @ dz, "b2": np.sum(dz, axis=0)}
    return value, grads


def np_heat(u0, alpha, steps):
    """Explicit heat equation, loss sum(u_T^2), gradient w.r.t. u0.

    The step is linear (u' = M u), so the reverse pass applies M^T to the
    cotangent ``steps`` times and needs no stored states.
    """
    u = u0.copy()
    un = u.copy()
    for _ in range(steps):
        un[1:-1] = u[1:-1] + alpha * (u[2:] - 2 * u[1:-1] + u[:-2])
        un[0], un[-1] = u[0], u[-1]
        u, un = un, u
    g = 2.0 * u
    for _ in range(steps):
        h = g[1:-1].copy()            # cotangent of the interior of the new state
        g[1:-1] -= 2 * alpha * h
        g[2:] += alpha * h
        g[:-2] += alpha * h
    return np.sum(u * u), g


# --------------------------------------------------------------------------
# Hand-written C

# Declaring the math functions SIMD-callable (with -fopenmp-simd, which is in
# tapediff's default flags) is what makes gcc call libmvec's vector variants;
# without it each call is scalar glibc, 10-40x slower. cos is declared under
# another C name with the same symbol: otherwise gcc merges sin(x) and cos(x)
# of one loop into a scalar sincos call and the loop no longer vectorises.
# pow is declared SIMD-callable only under the alias hw_vpow, so that each
# Taylor kernel can pick the scalar or the vector pow (the vector one falls
# back to slow scalar code when results underflow, as x^i does at x = 0.5).
# `#pragma omp simd reduction` lets gcc reassociate the sums (8 lanes): the
# hand-written baseline is allowed that; its checks use a 1e-8 tolerance.
C_SOURCE = r"""
#include <math.h>
#include <string.h>

#pragma omp declare simd notinbranch
double tanh(double);
#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
double sin(double);
#pragma omp declare simd notinbranch
__attribute__((const)) double hw_cos(double) __asm__("cos");
#pragma omp declare simd notinbranch
__attribute__((const)) double hw_vpow(double, double) __asm__("pow");

/* Taylor, the tape's operations: x^i by pow, one pow per term (x^i = x^(i-1) x). */
double hw_taylor_pow(double x, long n, double *g) {
    double v = 0.0, d = 0.0;
    for (long i = 1; i <= n; i++) {
        double p = pow(x, (double)(i - 1));
        v += p * x / (double)i;
        d += p;
    }
    *g = d;
    return v;
}

/* Same with libmvec's vector pow (fast unless x^i underflows, see above). */
double hw_taylor_vpow(double x, long n, double *g) {
    double v = 0.0, d = 0.0;
    /* an int counter: converting a long to double does not vectorise without AVX-512DQ */
#pragma omp simd reduction(+:v, d)
    for (int i = 1; i <= (int)n; i++) {
        double p = hw_vpow(x, (double)(i - 1));
        v += p * x / (double)i;
        d += p;
    }
    *g = d;
    return v;
}

/* Taylor by a running product: another algorithm (no pow at all), what one
   would write by hand; a serial multiply chain, not vectorisable. */
double hw_taylor_product(double x, long n, double *g) {
    double v = 0.0, d = 0.0, p = 1.0;          /* p = x^(i-1) */
    for (long i = 1; i <= n; i++) {
        d += p;
        p *= x;
        v += p / (double)i;
    }
    *g = d;
    return v;
}

/* sum_k sum_i sin(t_k a_i) exp(-b_i t_k), p = (a, b); one fused pass per i. */
double hw_sin_exp(const double *p, const double *t, long K, double *g) {
    double v = 0.0;
    for (int i = 0; i < 5; i++) {
        const double a = p[i], b = p[5 + i];
        double vi = 0.0, ga = 0.0, gb = 0.0;
#pragma omp simd reduction(+:vi, ga, gb)
        for (long k = 0; k < K; k++) {
            double tk = t[k], s = sin(a * tk), c = hw_cos(a * tk), e = exp(-b * tk);
            double se = s * e;
            vi += se;
            ga += tk * c * e;
            gb -= tk * se;
        }
        v += vi; g[i] = ga; g[5 + i] = gb;
    }
    return v;
}

/* sum(tanh(x)^3) + x.x: value and gradient in one pass, tanh not stored. */
double hw_tanh_cube(const double *x, long n, double *g) {
    double v = 0.0;
#pragma omp simd reduction(+:v)
    for (long i = 0; i < n; i++) {
        double xi = x[i], t = tanh(xi), t2 = t * t;
        v += t2 * t + xi * xi;
        g[i] = 3.0 * t2 * (1.0 - t2) + 2.0 * xi;
    }
    return v;
}

/* MLP value+gradient with plain loops, for tiny layers (2-50-2) where the
   cost of a BLAS call would dominate. Row-major W1 (I,H), b1 (H), W2 (H,O),
   b2 (O), x (B,I), one-hot y (B,O); work holds B*(H+O) doubles. */
double hw_mlp(const double *W1, const double *b1, const double *W2, const double *b2,
              const double *x, const double *y, long B, long I, long H, long O,
              double *gW1, double *gb1, double *gW2, double *gb2, double *work) {
    double *h = work, *dz = work + B * H, loss = 0.0;
    for (long b = 0; b < B; b++) {                  /* forward, and d loss / d logits */
        const double *xb = x + b * I, *yb = y + b * O;
        double *hb = h + b * H, *zb = dz + b * O, m = -INFINITY, se = 0.0, ysum = 0.0;
        for (long j = 0; j < H; j++) {
            double z = b1[j];
            for (long i = 0; i < I; i++) z += xb[i] * W1[i * H + j];
            hb[j] = tanh(z);
        }
        for (long o = 0; o < O; o++) {
            double l = b2[o];
            for (long j = 0; j < H; j++) l += hb[j] * W2[j * O + o];
            zb[o] = l;
            m = l > m ? l : m;
        }
        for (long o = 0; o < O; o++) { se += exp(zb[o] - m); ysum += yb[o]; }
        const double lse = m + log(se);
        for (long o = 0; o < O; o++) {
            const double logp = zb[o] - lse;
            loss -= yb[o] * logp;
            zb[o] = (exp(logp) * ysum - yb[o]) / (double)B;   /* softmax * sum(y) - y, over B */
        }
    }
    memset(gW1, 0, I * H * sizeof(double)); memset(gb1, 0, H * sizeof(double));
    memset(gW2, 0, H * O * sizeof(double)); memset(gb2, 0, O * sizeof(double));
    for (long b = 0; b < B; b++) {                  /* reverse */
        const double *xb = x + b * I, *hb = h + b * H, *zb = dz + b * O;
        for (long o = 0; o < O; o++) gb2[o] += zb[o];
        for (long j = 0; j < H; j++) {
            double dh = 0.0;
            for (long o = 0; o < O; o++) { gW2[j * O + o] += hb[j] * zb[o]; dh += zb[o] * W2[j * O + o]; }
            const double dpre = dh * (1.0 - hb[j] * hb[j]);
            gb1[j] += dpre;
            for (long i = 0; i < I; i++) gW1[i * H + j] += xb[i] * dpre;
        }
    }
    return loss / (double)B;
}

/* Heat equation: forward with two ping-pong rows, then M^T applied `steps`
   times to the cotangent (the step is linear, nothing is stored).
   work holds 2n doubles; n >= 3. */
double hw_heat(const double *u0, double alpha, long n, long steps, double *g, double *work) {
    double *u = work, *un = work + n;
    memcpy(u, u0, n * sizeof(double));
    for (long s = 0; s < steps; s++) {
        un[0] = u[0]; un[n - 1] = u[n - 1];
        for (long j = 1; j < n - 1; j++)
            un[j] = u[j] + alpha * (u[j + 1] - 2.0 * u[j] + u[j - 1]);
        double *tmp = u; u = un; un = tmp;
    }
    double v = 0.0;
    for (long j = 0; j < n; j++) { v += u[j] * u[j]; g[j] = 2.0 * u[j]; }
    /* Reverse: the cotangent of the boundary is copied through; that of the
       interior h (zero at the boundary) goes through the same stencil. */
    double *h = un;
    for (long s = 0; s < steps; s++) {
        memcpy(h, g, n * sizeof(double));
        const double g0 = h[0], g1 = h[n - 1];
        h[0] = h[n - 1] = 0.0;
        g[0] = g0 + alpha * h[1];
        g[n - 1] = g1 + alpha * h[n - 2];
        for (long j = 1; j < n - 1; j++)
            g[j] = h[j] + alpha * (h[j + 1] - 2.0 * h[j] + h[j - 1]);
    }
    return v;
}
"""

C_CDEF = """
double hw_taylor_pow(double x, long n, double *g);
double hw_taylor_vpow(double x, long n, double *g);
double hw_taylor_product(double x, long n, double *g);
double hw_sin_exp(const double *p, const double *t, long K, double *g);
double hw_tanh_cube(const double *x, long n, double *g);
double hw_heat(const double *u0, double alpha, long n, long steps, double *g, double *work);
double hw_mlp(const double *W1, const double *b1, const double *W2, const double *b2,
              const double *x, const double *y, long B, long I, long H, long O,
              double *gW1, double *gb1, double *gW2, double *gb2, double *work);
"""

_module = None


def c_available():
    """True when tapediff can compile C here (gcc/clang and cffi usable)."""
    from tapediff.runtime import compiler_available
    return compiler_available()


def load():
    """The compiled baseline module ``(ffi, lib)``: built once, then cached on disk."""
    global _module
    if _module is None:
        from tapediff.runtime import load_or_build
        _module = load_or_build(C_SOURCE, C_CDEF, name_hint="bench_handwritten")
    return _module


def c_taylor(x, n, variant):
    """Taylor value+gradient at fixed n; variant 'pow', 'vpow' or 'product'."""
    ffi, lib = load()
    kernel = getattr(lib, "hw_taylor_" + variant)
    g = ffi.new("double *")

    def vg(x):
        v = kernel(x, n, g)
        return v, g[0]
    return vg


def c_sin_exp(p, t):
    ffi, lib = load()
    g = np.empty(10)
    pg, fb, K = ffi.from_buffer("double[]", g), ffi.from_buffer, t.size

    def vg(p, t):
        return lib.hw_sin_exp(fb("double[]", p), fb("double[]", t), K, pg), g
    return vg


def c_tanh_cube(x):
    ffi, lib = load()
    g = np.empty_like(x)
    pg, fb, n = ffi.from_buffer("double[]", g), ffi.from_buffer, x.size

    def vg(x):
        return lib.hw_tanh_cube(fb("double[]", x), n, pg), g
    return vg


def c_heat(u0, alpha, steps):
    ffi, lib = load()
    n = u0.size
    g, work = np.empty(n), np.empty(2 * n)
    pg, pw, fb = ffi.from_buffer("double[]", g), ffi.from_buffer("double[]", work), ffi.from_buffer

    def vg(u0, alpha):
        return lib.hw_heat(fb("double[]", u0), alpha, n, steps, pg, pw), g
    return vg


def c_mlp(w, x, y):
    """The MLP with loops (meant for 2-50-2; at 784-256-10 it would be a naive GEMM)."""
    ffi, lib = load()
    (I, H), O, B = w["W1"].shape, w["W2"].shape[1], x.shape[0]
    g = {k: np.empty_like(v) for k, v in w.items()}
    work = np.empty(B * (H + O))
    fb = ffi.from_buffer
    pg = [fb("double[]", g[k]) for k in ("W1", "b1", "W2", "b2")]
    pw = fb("double[]", work)

    def vg(w, x, y):
        v = lib.hw_mlp(fb("double[]", w["W1"]), fb("double[]", w["b1"]), fb("double[]", w["W2"]),
                       fb("double[]", w["b2"]), fb("double[]", x), fb("double[]", y),
                       B, I, H, O, *pg, pw)
        return v, g
    return vg
