"""Hypothesis profiles for the fuzz modules (``test_fuzz_*.py``): a short fixed budget by default.

``SECRETKIT_FUZZ=long`` selects the long, randomised profile for a run by hand; see
docs/testing.md ("Fuzzing secretkit itself") and ``fuzzing.py`` for the budgets.
"""

from __future__ import annotations

from datetime import timedelta

from fuzzing import LONG
from hypothesis import HealthCheck, Phase, settings

# The suite's run: the same examples on every machine (derandomised, no example database), no
# shrinking (a failure costs one example, not minutes; the long profile shrinks it), and no
# health check that measures time, which a loaded CI machine would fail at random.
settings.register_profile(
    "secretkit-ci",
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=2),
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=False,
)
# By hand: LONG_FACTOR times the examples, a fresh seed each run, shrinking to a minimal case.
# A failure prints a `@reproduce_failure` blob to replay it.
settings.register_profile(
    "secretkit-long",
    derandomize=False,
    database=None,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("secretkit-long" if LONG else "secretkit-ci")
