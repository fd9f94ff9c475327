/* tapediff_math.h: scalar helpers with NumPy's semantics (floor division and
 * modulo signs, NaN-propagating maximum/minimum, integer powers, logaddexp),
 * and the status codes, included by the C runtime (tapediff.h) and by every
 * CUDA module (tapediff_cuda.cuh), so that both backends spell an op the
 * same way.
 * TD_FN makes them device functions when compiled as CUDA. */
#ifndef TAPEDIFF_MATH_H
#define TAPEDIFF_MATH_H
/* Status codes: 0 is success; 1 means a guard saw another outcome; negative
 * codes are numeric failures (tapediff/codegen/errors.py raises them). */
#define TD_OK 0
#define TD_SINGULAR (-1)      /* LinAlgError: Singular matrix */
#define TD_NOT_PD (-2)        /* LinAlgError: Matrix is not positive definite */
#define TD_BAD_INDEX (-3)     /* IndexError: an index out of bounds */
#define TD_NO_CONVERGENCE (-4) /* LinAlgError: Eigenvalues did not converge */
#define TD_SVD_NO_CONVERGENCE (-5) /* LinAlgError: SVD did not converge */

#ifdef __CUDACC__
#define TD_FN static __device__ __forceinline__
#else
#define TD_FN static inline
#endif

/* np.maximum / np.minimum: a NaN operand wins; of two equal operands the
 * second, as NumPy (maximum(-0.0, 0.0) is 0.0, maximum(0.0, -0.0) -0.0). */
#define TD_MAX(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define TD_MIN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))
/* Reduction steps of np.max / np.min: once the accumulator is NaN it stays NaN. */
#define TD_MAXR(acc, v) (((acc) != (acc) || !((v) > (acc) || (v) != (v))) ? (acc) : (v))
#define TD_MINR(acc, v) (((acc) != (acc) || !((v) < (acc) || (v) != (v))) ? (acc) : (v))

/* Python's (and NumPy's) float modulo: the result takes the divisor's sign. */
TD_FN double td_fmod_py(double a, double b) {
    double m = fmod(a, b);
    if (b == 0.0) return m;                       /* nan, as NumPy */
    if (m != 0.0) { if ((b < 0) != (m < 0)) m += b; }
    else m = copysign(0.0, b);
    return m;
}
TD_FN float td_fmod_pyf(float a, float b) {
    float m = fmodf(a, b);
    if (b == 0.0f) return m;
    if (m != 0.0f) { if ((b < 0) != (m < 0)) m += b; }
    else m = copysignf(0.0f, b);
    return m;
}
/* NumPy's npy_floor_divide for floats (npy_divmod's quotient). */
TD_FN double td_floordiv(double a, double b) {
    double mod, div, floordiv;
    if (b == 0.0) return a / b;
    mod = fmod(a, b);
    div = (a - mod) / b;
    if (mod != 0.0 && ((b < 0) != (mod < 0))) div -= 1.0;
    if (div != 0.0) { floordiv = floor(div); if (div - floordiv > 0.5) floordiv += 1.0; }
    else floordiv = copysign(0.0, a / b);
    return floordiv;
}
TD_FN float td_floordivf(float a, float b) { return (float)td_floordiv(a, b); }
/* Integer floor division and modulo: Python signs; division by zero gives 0 (NumPy). */
TD_FN int64_t td_ifloordiv(int64_t a, int64_t b) {
    if (b == 0) return 0;
    if (b == -1 && a == INT64_MIN) return INT64_MIN;
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
    return q;
}
TD_FN int64_t td_imod(int64_t a, int64_t b) {
    if (b == 0 || b == -1) return 0;
    int64_t m = a % b;
    if (m != 0 && ((m < 0) != (b < 0))) m += b;
    return m;
}
/* Integer power by squaring (negative exponents are rejected at record time). */
TD_FN int64_t td_ipow(int64_t a, int64_t b) {
    int64_t r = 1;
    while (b > 0) { if (b & 1) r *= a; a *= a; b >>= 1; }
    return r;
}
/* np.logaddexp (npy_logaddexp): exact at ties, including +-inf. */
TD_FN double td_logaddexp(double x, double y) {
    if (x == y) return x + 0.693147180559945309417232121458176568;
    double t = x - y;
    if (t > 0) return x + log1p(exp(-t));
    if (t <= 0) return y + log1p(exp(t));
    return t;
}
TD_FN float td_logaddexpf(float x, float y) { return (float)td_logaddexp(x, y); }
TD_FN double td_logaddexp2(double x, double y) {
    if (x == y) return x + 1.0;
    double t = x - y;
    if (t > 0) return x + log1p(exp2(-t)) / 0.693147180559945309417232121458176568;
    if (t <= 0) return y + log1p(exp2(t)) / 0.693147180559945309417232121458176568;
    return t;
}
TD_FN float td_logaddexp2f(float x, float y) { return (float)td_logaddexp2(x, y); }
TD_FN double td_sign(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : (x == 0 ? 0.0 : x)); }
TD_FN float td_signf(float x) { return x > 0 ? 1.0f : (x < 0 ? -1.0f : (x == 0 ? 0.0f : x)); }
TD_FN double td_heaviside(double x, double h) {
    return x != x ? x : (x == 0 ? h : (x < 0 ? 0.0 : 1.0));
}
TD_FN float td_heavisidef(float x, float h) { return (float)td_heaviside(x, h); }
/* np.spacing: the distance to the next float away from zero (negative for
 * x < 0; the smallest subnormal for either zero), NaN for inf and NaN. */
TD_FN double td_spacing(double x) {
    if (!isfinite(x)) return x - x;
    const double inf = (double)INFINITY;   /* (a float INFINITY picks C++'s host-only template) */
    return x < 0 ? nextafter(x, -inf) - x : nextafter(x, inf) - x;
}
TD_FN float td_spacingf(float x) {
    if (!isfinite(x)) return x - x;
    return x < 0 ? nextafterf(x, -INFINITY) - x : nextafterf(x, INFINITY) - x;
}
/* Stable argsort of one line: the n values x[k * sx] ordered into idx[0..n),
 * equal values in their original order (kind='stable'), NaN last as NumPy
 * sorts it; a bottom-up merge sort over indices, with tmp as n more of
 * scratch. TD_LESS_F is NumPy's float order, TD_LESS_I the integer one. */
#define TD_LESS_F(a, b) ((a) < (b) || ((b) != (b) && (a) == (a)))
#define TD_LESS_I(a, b) ((a) < (b))
#define TD_DEFINE_ARGSORT(NAME, T, LESS)                                              \
TD_FN void NAME(const T *x, int64_t sx, int64_t n, int64_t *idx, int64_t *tmp) {     \
    int64_t *src = idx, *dst = tmp;                                                   \
    for (int64_t k = 0; k < n; k++) idx[k] = k;                                       \
    for (int64_t w = 1; w < n; w *= 2) {                                              \
        for (int64_t lo = 0; lo < n; lo += 2 * w) {                                   \
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n; \
            int64_t a = lo, b = mid, o = lo;                                          \
            while (a < mid && b < hi)                                                 \
                dst[o++] = LESS(x[src[b] * sx], x[src[a] * sx]) ? src[b++] : src[a++]; \
            while (a < mid) dst[o++] = src[a++];                                      \
            while (b < hi) dst[o++] = src[b++];                                       \
        }                                                                             \
        int64_t *t = src; src = dst; dst = t;                                         \
    }                                                                                 \
    if (src != idx) for (int64_t k = 0; k < n; k++) idx[k] = src[k];                 \
}
TD_DEFINE_ARGSORT(td_argsort_f64, double, TD_LESS_F)
TD_DEFINE_ARGSORT(td_argsort_f32, float, TD_LESS_F)
TD_DEFINE_ARGSORT(td_argsort_i64, int64_t, TD_LESS_I)
TD_DEFINE_ARGSORT(td_argsort_i32, int32_t, TD_LESS_I)
TD_DEFINE_ARGSORT(td_argsort_i16, int16_t, TD_LESS_I)
TD_DEFINE_ARGSORT(td_argsort_i8, int8_t, TD_LESS_I)
TD_DEFINE_ARGSORT(td_argsort_u8, uint8_t, TD_LESS_I)

/* np.round(x, decimals) for decimals > 0: NumPy multiplies, rounds half to even, divides. */
TD_FN double td_round(double x, double scale) { return rint(x * scale) / scale; }

#endif
