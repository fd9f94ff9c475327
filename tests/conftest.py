import os

# Single-threaded BLAS, set before NumPy loads: on a busy 2-core machine BLAS
# threads spinning against each other make small products very slow.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from hypothesis import HealthCheck, settings

# Derivative checks run the function several times per example; keep CI bounded.
settings.register_profile("ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("TAPEDIFF_HYPOTHESIS", "ci"))
