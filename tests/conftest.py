import os

from hypothesis import HealthCheck, settings

# Derivative checks run the function several times per example; keep CI bounded.
settings.register_profile("ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("TAPEDIFF_HYPOTHESIS", "ci"))
