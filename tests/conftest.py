import os

# Single-threaded BLAS, set before NumPy loads: on a busy 2-core machine BLAS
# threads spinning against each other make small products very slow.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# Compiled modules of the test-suite go to a private directory, not the user's cache.
if "TAPEDIFF_CACHE_DIR" not in os.environ:
    import tempfile
    os.environ["TAPEDIFF_CACHE_DIR"] = tempfile.mkdtemp(prefix="tapediff-test-cache-")

from hypothesis import HealthCheck, settings

# Derivative checks run the function several times per example; keep CI bounded.
settings.register_profile("ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("TAPEDIFF_HYPOTHESIS", "ci"))
