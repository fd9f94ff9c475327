/* tapediff_lapack.h: the LAPACK-based kernels of compiled tapes, in double
 * precision: NumPy computes float32 linear algebra in double too and casts
 * the results (numpy.linalg's _commonType), so the lowering casts float32
 * operands up and the results down around these calls. Each function takes
 * row-major arrays and copies them to Fortran order as NumPy does (its
 * "linearize" step), so LAPACK factors the same matrix NumPy's call does.
 * Return codes are tapediff_math.h's (LinAlgError's cases). */

/* F = the row-major rows x cols X in Fortran order (column-major). */
static inline void td_to_fortran(int64_t rows, int64_t cols, const double *X, double *F) {
    for (int64_t i = 0; i < rows; i++) for (int64_t j = 0; j < cols; j++) F[j * rows + i] = X[i * cols + j];
}

/* X = the Fortran-order rows x cols F, row-major. */
static inline void td_from_fortran(int64_t rows, int64_t cols, const double *F, double *X) {
    for (int64_t i = 0; i < rows; i++) for (int64_t j = 0; j < cols; j++) X[i * cols + j] = F[j * rows + i];
}

/* X = solve(A, B) as NumPy's gesv: A row-major n x n, B row-major n x nrhs
 * (both untouched), copied to Fortran order in work (n*n + n*nrhs
 * elements; ipiv n ints); getrf factors A, getrs solves. Returns
 * TD_SINGULAR on an exactly zero pivot, as NumPy raises LinAlgError (with
 * no right-hand side too: NumPy factors first). */
static inline int td_dsolve(int64_t n, int64_t nrhs, const double *A, const double *B, double *X,
                            double *work, int *ipiv) {
    int in = (int)n, info = 0, inr = (int)nrhs;
    char t = 'N';
    double *bt = work + n * n;               /* n * nrhs: B in Fortran order */
    if (n == 0) return TD_OK;                /* nothing to solve (LAPACK would complain) */
    td_to_fortran(n, n, A, work);
    TD_BLAS.dgetrf(&in, &in, work, &in, ipiv, &info);
    if (info > 0) return TD_SINGULAR;
    if (nrhs == 0) return TD_OK;
    td_to_fortran(n, nrhs, B, bt);
    TD_BLAS.dgetrs(&t, &in, &inr, work, &in, ipiv, bt, &in, &info);
    td_from_fortran(n, nrhs, bt, X);
    return TD_OK;
}

/* X = T^-1 B, T the lower (lower=1) or upper triangle of A, diagonal
 * included: substitution (trtrs), n^2 per column instead of LU's 2n^3/3
 * first. Row-major A read as Fortran is A^T, whose upper triangle is A's
 * lower one: trtrs('U' for lower, trans='T') solves T x = b. work holds
 * n*nrhs elements (B in Fortran order). Returns TD_SINGULAR on an exactly
 * zero diagonal entry, as scipy raises LinAlgError. */
static inline int td_dtrsolve(int64_t n, int64_t nrhs, const double *A, const double *B,
                                double *X, double *work, int lower) {
    int in = (int)n, info = 0, inr = (int)nrhs;
    char uplo = lower ? 'U' : 'L', t = 'T', diag = 'N';
    if (n == 0 || nrhs == 0) return TD_OK;
    td_to_fortran(n, nrhs, B, work);
    TD_BLAS.dtrtrs(&uplo, &t, &diag, &in, &inr, (double *)A, &in, work, &in, &info);
    if (info > 0) return TD_SINGULAR;
    td_from_fortran(n, nrhs, work, X);
    return TD_OK;
}

/* log|det(A)| and its sign (NumPy's slogdet), A row-major n x n (untouched):
 * LU (getrf) of A copied to Fortran order, as NumPy's, the logarithms of the
 * pivots' magnitudes added in order, the sign flipped per negative pivot
 * and per row interchange (a NaN pivot leaves the sign alone, as NumPy's
 * does); an exactly singular matrix gives sign 0 and -inf. work holds n*n
 * elements, ipiv n ints. */
static inline void td_dslogdet(int64_t n, const double *A, double *work, int *ipiv,
                               double *sign, double *logabs) {
    int in = (int)n, info = 0;
    double s = 1, l = 0;
    if (n > 0) {
        td_to_fortran(n, n, A, work);
        TD_BLAS.dgetrf(&in, &in, work, &in, ipiv, &info);
    }
    if (info > 0) { *sign = 0; *logabs = -INFINITY; return; }
    for (int64_t i = 0; i < n; i++) {
        double u = work[i * n + i];
        if (ipiv[i] != i + 1) s = -s;
        if (u < 0) { s = -s; u = -u; }
        l += log(u);
    }
    *sign = s;
    *logabs = l;
}

/* det(A) as NumPy computes it: sign * exp(log|det|) of slogdet (not the
 * product of the pivots, which rounds differently); 0 for an exactly
 * singular matrix. */
static inline double td_ddet(int64_t n, const double *A, double *work, int *ipiv) {
    double s, l;
    td_dslogdet(n, A, work, ipiv, &s, &l);
    return s == 0 ? 0 : s * exp(l);
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
            if (upper ? j < i : j > i) out[i * n + j] = 0;
    return TD_OK;
}

/* (w, V) = eigh(A) as NumPy computes it: the row-major n x n A copied to
 * Fortran order (NumPy's own copy) and handed to syevd with the triangle
 * NumPy names (upper=0: 'L'), the eigenvectors (Fortran columns) copied back
 * as V's columns. V == NULL: the eigenvalues alone (jobz 'N', as NumPy's
 * eigvalsh). work holds 3n^2 + 6n + 1 elements, iwork 5n + 3 ints. Returns
 * TD_NO_CONVERGENCE when LAPACK does not converge (LinAlgError). */
static inline int td_dsyevd(int64_t n, const double *A, double *w, double *V, double *work,
                              int *iwork, int upper) {
    int in = (int)n, info = 0, lwork = (int)(2 * n * n + 6 * n + 1), liwork = (int)(5 * n + 3);
    char jobz = V ? 'V' : 'N', uplo = upper ? 'U' : 'L';
    double *F = work + lwork;                 /* n * n: A, then the eigenvectors, Fortran order */
    if (n == 0) return TD_OK;
    td_to_fortran(n, n, A, F);
    TD_BLAS.dsyevd(&jobz, &uplo, &in, F, &in, w, work, &lwork, iwork, &liwork, &info);
    if (info != 0) return TD_NO_CONVERGENCE;     /* (info < 0, a bad argument, cannot happen) */
    if (V) td_from_fortran(n, n, F, V);
    return TD_OK;
}

/* (U, s, Vh) = svd(A) as NumPy computes it: the row-major m x n A copied to
 * Fortran order (NumPy's own copy) and handed to gesdd with NumPy's jobz
 * ('S' reduced, 'A' full: U m x ucols, Vh vrows x n; U == NULL: 'N', the
 * singular values alone), the Fortran factors copied back row-major. lwork
 * is LAPACK's optimal size for this shape (NumPy asks gesdd for it; the
 * lowering asks scipy's gesdd_lwork once); work holds m*n + m*ucols +
 * vrows*n + lwork elements, iwork 8*min(m, n) ints. m, n >= 1. Returns
 * TD_SVD_NO_CONVERGENCE when gesdd does not converge (LinAlgError). */
static inline int td_dgesdd(int64_t m, int64_t n, const double *A, double *s, double *U, double *Vh,
                              int full, double *work, int64_t lwork, int *iwork) {
    int64_t k = m < n ? m : n, ucols = full ? m : k, vrows = full ? n : k;
    int im = (int)m, in = (int)n, ildu = (int)m, ildv = (int)(U ? vrows : n);
    int ilw = (int)lwork, info = 0;
    char jobz = U ? (full ? 'A' : 'S') : 'N';
    double *F = work + lwork, *Uf = F + m * n, *Vf = Uf + m * ucols;
    td_to_fortran(m, n, A, F);
    TD_BLAS.dgesdd(&jobz, &im, &in, F, &im, s, Uf, &ildu, Vf, &ildv, work, &ilw, iwork, &info);
    if (info != 0) return TD_SVD_NO_CONVERGENCE;   /* (info < 0, a bad argument, cannot happen) */
    if (!U) return TD_OK;
    td_from_fortran(m, ucols, Uf, U);
    td_from_fortran(vrows, n, Vf, Vh);
    return TD_OK;
}

/* P = pinv(A) as NumPy computes it: the reduced SVD (gesdd 'S'), singular
 * values at most rcond * max(s) (compared in double, as NumPy's float64
 * cutoff) replaced by 0 and the others inverted, then P = Vh^T (s_inv U^T)
 * by gemm. A is m x n, P n x m. work holds k*m + k + m*k + k*n and
 * gesdd's (see above) elements, k = min(m, n). */
static inline int td_dpinv(int64_t m, int64_t n, const double *A, double *P, double rcond,
                             double *work, int64_t lwork, int *iwork) {
    int64_t k = m < n ? m : n;
    double *W = work, *s = W + k * m, *U = s + k, *Vh = U + m * k, *rest = Vh + k * n;
    double cutoff, big = 0;
    int st = td_dgesdd(m, n, A, s, U, Vh, 0, rest, lwork, iwork);
    if (st) return st;
    for (int64_t i = 0; i < k; i++) if (s[i] > big) big = s[i];
    cutoff = rcond * big;
    for (int64_t i = 0; i < k; i++) {
        double inv = s[i] > cutoff ? 1 / s[i] : 0;
        for (int64_t j = 0; j < m; j++) W[i * m + j] = inv * U[j * k + i];   /* s_inv U^T */
    }
    td_dgemm(1, 0, n, m, k, Vh, n, W, m, 0, P, m);                      /* Vh^T W */
    return TD_OK;
}

/* (Q, R) = qr(A) as NumPy computes it: the row-major m x n A copied to
 * Fortran order, geqrf; R is the upper triangle of the factored matrix's
 * first rrows rows (row-major rrows x n); orgqr then builds Q's qcols
 * columns (row-major m x qcols) from the reflectors, in place (NumPy's
 * qr_reduced, or qr_complete with qcols = m > n). work holds
 * m*max(n, qcols) + min(m, n) + lwork elements; lwork is at least geqrf's
 * optimal size (asked once, through scipy) and orgqr's (qcols times a
 * block size). m, n >= 1. */
static inline int td_dqr(int64_t m, int64_t n, const double *A, double *Q, double *R,
                         int64_t qcols, int64_t rrows, double *work, int64_t lwork) {
    int64_t k = m < n ? m : n, w = n > qcols ? n : qcols;
    double *F = work, *tau = F + m * w, *wk = tau + k;
    int im = (int)m, in = (int)n, ik = (int)k, iq = (int)qcols, ilw = (int)lwork, info = 0;
    td_to_fortran(m, n, A, F);
    TD_BLAS.dgeqrf(&im, &in, F, &im, tau, wk, &ilw, &info);
    for (int64_t i = 0; i < rrows; i++)
        for (int64_t j = 0; j < n; j++) R[i * n + j] = j >= i ? F[j * m + i] : 0.0;
    TD_BLAS.dorgqr(&im, &iq, &ik, F, &im, tau, wk, &ilw, &info);
    td_from_fortran(m, qcols, F, Q);
    return TD_OK;    /* (info < 0, a bad argument, cannot happen) */
}
