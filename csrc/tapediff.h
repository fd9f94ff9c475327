/* tapediff.h: the runtime every generated C module includes.
 *
 * - status codes returned by generated entry points;
 * - vector-math declarations (glibc's libmvec) so gcc vectorises loops that
 *   call exp/log/tanh/... without -ffast-math (see docs/c-backend-notes.md);
 * - BLAS/LAPACK through the function pointers scipy exports, set once by
 *   td_init() (the module links no BLAS of its own);
 * - small helpers with NumPy's semantics (floor division and modulo signs,
 *   NaN-propagating maximum/minimum, integer powers, logaddexp).
 *
 * Generated code never touches Python objects: entry points run with the
 * GIL released (cffi API mode), possibly from several threads at once.
 */
#ifndef TAPEDIFF_H
#define TAPEDIFF_H
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Status codes (TD_OK, TD_SINGULAR, ...): tapediff_math.h, shared with CUDA. */

/* ------------------------------------------------------------ vector math
 * Redeclared with "omp declare simd" so that -fopenmp-simd makes gcc call the
 * libmvec variants (_ZGV...) in vectorised loops. glibc declares them only
 * under __FAST_MATH__, which we never use (NaN/inf and summation order). */
#define TD_SIMD _Pragma("omp declare simd notinbranch")
TD_SIMD double exp(double); TD_SIMD float expf(float);
TD_SIMD double log(double); TD_SIMD float logf(float);
TD_SIMD double sin(double); TD_SIMD float sinf(float);
TD_SIMD double tanh(double); TD_SIMD float tanhf(float);
TD_SIMD double expm1(double); TD_SIMD float expm1f(float);
TD_SIMD double log1p(double); TD_SIMD float log1pf(float);
TD_SIMD double log2(double); TD_SIMD float log2f(float);
TD_SIMD double log10(double); TD_SIMD float log10f(float);
TD_SIMD double exp2(double); TD_SIMD float exp2f(float);
TD_SIMD double tan(double); TD_SIMD float tanf(float);
TD_SIMD double sinh(double); TD_SIMD float sinhf(float);
TD_SIMD double cosh(double); TD_SIMD float coshf(float);
TD_SIMD double asin(double); TD_SIMD float asinf(float);
TD_SIMD double acos(double); TD_SIMD float acosf(float);
TD_SIMD double atan(double); TD_SIMD float atanf(float);
TD_SIMD double asinh(double); TD_SIMD float asinhf(float);
TD_SIMD double acosh(double); TD_SIMD float acoshf(float);
TD_SIMD double atanh(double); TD_SIMD float atanhf(float);
TD_SIMD double cbrt(double); TD_SIMD float cbrtf(float);
TD_SIMD double atan2(double, double); TD_SIMD float atan2f(float, float);
TD_SIMD double hypot(double, double); TD_SIMD float hypotf(float, float);
TD_SIMD double pow(double, double); TD_SIMD float powf(float, float);
/* cos under another C name with the same symbol: gcc would merge a sin and a
 * cos of one argument (a forward sin next to its derivative) into one scalar
 * sincos call and give up vectorising the loop (17x slower). */
TD_SIMD __attribute__((const)) double td_cos(double) __asm__("cos");
TD_SIMD __attribute__((const)) float td_cosf(float) __asm__("cosf");

/* NumPy's semantics for scalar operations: shared with the CUDA kernels. */
#include "tapediff_math.h"

/* ------------------------------------------------------------ BLAS / LAPACK
 * scipy.linalg.cython_blas / cython_lapack export their wrappers as
 * PyCapsules whose name is the C signature; tapediff reads the pointers once
 * and hands them to td_init. The wrappers are nogil and take LP64 ints. */
typedef void (*td_gemm_d)(char *, char *, int *, int *, int *, double *, double *, int *,
                          double *, int *, double *, double *, int *);
typedef void (*td_gemm_s)(char *, char *, int *, int *, int *, float *, float *, int *,
                          float *, int *, float *, float *, int *);
typedef void (*td_getrf_d)(int *, int *, double *, int *, int *, int *);
typedef void (*td_getrs_d)(char *, int *, int *, double *, int *, int *, double *, int *, int *);
typedef void (*td_potrf_d)(char *, int *, double *, int *, int *);
typedef void (*td_trtrs_d)(char *, char *, char *, int *, int *, double *, int *, double *,
                           int *, int *);
typedef void (*td_syevd_d)(char *, char *, int *, double *, int *, double *, double *, int *,
                           int *, int *, int *);
typedef struct { td_gemm_d dgemm; td_gemm_s sgemm; td_getrf_d dgetrf; td_getrs_d dgetrs;
                 td_potrf_d dpotrf; td_trtrs_d dtrtrs; td_syevd_d dsyevd; } td_blas_t;
#define TD_N_BLAS 7
static td_blas_t TD_BLAS;

/* Row-major C[m,n] = op(A)[m,k] @ op(B)[k,n] + beta*C with leading dimensions.
 * A row-major X is X^T in Fortran order, so dgemm computes C^T = op(B)^T op(A)^T:
 * operands and m/n swap, transpose flags stay. */
static inline void td_dgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const double *A,
                            int64_t lda, const double *B, int64_t ldb, double beta, double *C,
                            int64_t ldc) {
    char fa = ta ? 'T' : 'N', fb = tb ? 'T' : 'N';
    int im = (int)m, in = (int)n, ik = (int)k, ila = (int)lda, ilb = (int)ldb, ilc = (int)ldc;
    double one = 1.0;
    if (m == 0 || n == 0) return;
    if (k == 0) { for (int64_t i = 0; i < m; i++) for (int64_t j = 0; j < n; j++)
                      C[i * ldc + j] = beta == 0.0 ? 0.0 : beta * C[i * ldc + j];
                  return; }
    TD_BLAS.dgemm(&fb, &fa, &in, &im, &ik, &one, (double *)B, &ilb, (double *)A, &ila, &beta,
                  C, &ilc);
}
static inline void td_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *A,
                            int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                            int64_t ldc) {
    char fa = ta ? 'T' : 'N', fb = tb ? 'T' : 'N';
    int im = (int)m, in = (int)n, ik = (int)k, ila = (int)lda, ilb = (int)ldb, ilc = (int)ldc;
    float one = 1.0f;
    if (m == 0 || n == 0) return;
    if (k == 0) { for (int64_t i = 0; i < m; i++) for (int64_t j = 0; j < n; j++)
                      C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
                  return; }
    TD_BLAS.sgemm(&fb, &fa, &in, &im, &ik, &one, (float *)B, &ilb, (float *)A, &ila, &beta,
                  C, &ilc);
}

/* X = solve(A, B): A row-major n x n, B row-major n x nrhs (both untouched).
 * work holds n*n + n*nrhs doubles, ipiv n ints. Read as Fortran, the row-major
 * A is A^T: getrf factors A^T, and getrs with trans='T' then solves A x = b
 * for each column of B, copied to Fortran order in the second part of work.
 * Returns TD_SINGULAR on an exactly zero pivot, as NumPy raises LinAlgError. */
static inline int td_dsolve(int64_t n, int64_t nrhs, const double *A, const double *B, double *X,
                            double *work, int *ipiv) {
    int in = (int)n, info = 0, inr = (int)nrhs;
    char t = 'T';
    double *bt = work + n * n;             /* n * nrhs: B transposed (Fortran order) */
    if (n == 0 || nrhs == 0) return TD_OK;  /* nothing to solve (LAPACK would complain) */
    memcpy(work, A, sizeof(double) * (size_t)(n * n));
    TD_BLAS.dgetrf(&in, &in, work, &in, ipiv, &info);
    if (info > 0) return TD_SINGULAR;
    for (int64_t i = 0; i < n; i++) for (int64_t j = 0; j < nrhs; j++) bt[j * n + i] = B[i * nrhs + j];
    TD_BLAS.dgetrs(&t, &in, &inr, work, &in, ipiv, bt, &in, &info);
    for (int64_t i = 0; i < n; i++) for (int64_t j = 0; j < nrhs; j++) X[i * nrhs + j] = bt[j * n + i];
    return TD_OK;
}

/* X = T^-1 B, T the lower (lower=1) or upper triangle of A, diagonal
 * included: substitution (trtrs), n^2 per column instead of LU's 2n^3/3
 * first. Row-major A read as Fortran is A^T, whose upper triangle is A's
 * lower one: trtrs('U' for lower, trans='T') solves T x = b. work holds
 * n*nrhs doubles (B in Fortran order). Returns TD_SINGULAR on an exactly
 * zero diagonal entry, as scipy raises LinAlgError. */
static inline int td_dtrsolve(int64_t n, int64_t nrhs, const double *A, const double *B,
                              double *X, double *work, int lower) {
    int in = (int)n, info = 0, inr = (int)nrhs;
    char uplo = lower ? 'U' : 'L', t = 'T', diag = 'N';
    if (n == 0 || nrhs == 0) return TD_OK;
    for (int64_t i = 0; i < n; i++) for (int64_t j = 0; j < nrhs; j++) work[j * n + i] = B[i * nrhs + j];
    TD_BLAS.dtrtrs(&uplo, &t, &diag, &in, &inr, (double *)A, &in, work, &in, &info);
    if (info > 0) return TD_SINGULAR;
    for (int64_t i = 0; i < n; i++) for (int64_t j = 0; j < nrhs; j++) X[i * nrhs + j] = work[j * n + i];
    return TD_OK;
}

/* det(A), A row-major n x n (untouched): LU of the buffer (= LU of A^T, same
 * determinant), product of the diagonal, sign flipped per row interchange. */
static inline double td_ddet(int64_t n, const double *A, double *work, int *ipiv) {
    int in = (int)n, info = 0;
    double d = 1.0;
    if (n == 0) return 1.0;
    memcpy(work, A, sizeof(double) * (size_t)(n * n));
    TD_BLAS.dgetrf(&in, &in, work, &in, ipiv, &info);
    if (info > 0) return 0.0;
    for (int64_t i = 0; i < n; i++) {
        d *= work[i * n + i];
        if (ipiv[i] != i + 1) d = -d;
    }
    return d;
}

/* log|det(A)| and its sign (NumPy's slogdet), A row-major n x n (untouched):
 * as td_ddet, with the logarithms of the pivots' magnitudes added in order
 * (a NaN pivot leaves the sign alone, as NumPy's does); an exactly singular
 * matrix gives sign 0 and -inf. */
static inline void td_dslogdet(int64_t n, const double *A, double *work, int *ipiv,
                               double *sign, double *logabs) {
    int in = (int)n, info = 0;
    double s = 1.0, l = 0.0;
    if (n > 0) {
        memcpy(work, A, sizeof(double) * (size_t)(n * n));
        TD_BLAS.dgetrf(&in, &in, work, &in, ipiv, &info);
    }
    if (info > 0) { *sign = 0.0; *logabs = -INFINITY; return; }
    for (int64_t i = 0; i < n; i++) {
        double u = work[i * n + i];
        if (ipiv[i] != i + 1) s = -s;
        if (u < 0) { s = -s; u = -u; }
        l += log(u);
    }
    *sign = s;
    *logabs = l;
}

/* L = cholesky(A) (upper=0: lower L, A = L L^T, from A's lower triangle) or
 * U (upper=1: A = U^T U, from its upper triangle), row-major n x n. Read as
 * Fortran, the row-major buffer is A^T, whose upper triangle is A's lower
 * one: potrf('U') leaves U' with A^T = U'^T U', i.e. L = U'^T, which is the
 * buffer read row-major (upper mirrors it with 'L'). The other triangle is
 * zeroed. Returns TD_NOT_PD when the matrix is not positive definite. */
static inline int td_dcholesky(int64_t n, const double *A, double *out, int upper) {
    int in = (int)n, info = 0;
    char uplo = upper ? 'L' : 'U';
    if (n == 0) return TD_OK;
    memcpy(out, A, sizeof(double) * (size_t)(n * n));
    TD_BLAS.dpotrf(&uplo, &in, out, &in, &info);
    if (info > 0) return TD_NOT_PD;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            if (upper ? j < i : j > i) out[i * n + j] = 0.0;
    return TD_OK;
}

/* (w, V) = eigh(A) as NumPy computes it: the row-major n x n A copied to
 * Fortran order (NumPy's own copy) and handed to syevd with the triangle
 * NumPy names (upper=0: 'L'), the eigenvectors (Fortran columns) copied back
 * as V's columns. V == NULL: the eigenvalues alone (jobz 'N', as NumPy's
 * eigvalsh). work holds 3n^2 + 6n + 1 doubles, iwork 5n + 3 ints. Returns
 * TD_NO_CONVERGENCE when LAPACK does not converge (LinAlgError). */
static inline int td_dsyevd(int64_t n, const double *A, double *w, double *V, double *work,
                            int *iwork, int upper) {
    int in = (int)n, info = 0, lwork = (int)(2 * n * n + 6 * n + 1), liwork = (int)(5 * n + 3);
    char jobz = V ? 'V' : 'N', uplo = upper ? 'U' : 'L';
    double *F = work + lwork;               /* n * n: A, then the eigenvectors, Fortran order */
    if (n == 0) return TD_OK;
    for (int64_t i = 0; i < n; i++) for (int64_t j = 0; j < n; j++) F[j * n + i] = A[i * n + j];
    TD_BLAS.dsyevd(&jobz, &uplo, &in, F, &in, w, work, &lwork, iwork, &liwork, &info);
    if (info != 0) return TD_NO_CONVERGENCE;     /* (info < 0, a bad argument, cannot happen) */
    if (V) for (int64_t i = 0; i < n; i++) for (int64_t j = 0; j < n; j++) V[i * n + j] = F[j * n + i];
    return TD_OK;
}

/* Called once per loaded module with the pointers in td_blas_t order. */
static int td_init_blas(void **p) {
    void **t = (void **)&TD_BLAS;
    for (int i = 0; i < TD_N_BLAS; i++) { if (!p[i]) return -1; t[i] = p[i]; }
    return 0;
}
#endif
