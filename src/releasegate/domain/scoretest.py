"""Score tests for a paired binary difference (Tango 1998; McNemar at a zero difference).

The gate's McNemar interval is a Wald interval: its standard error is read at the observed
difference, and on paired pass/fail data the difference and its standard error move
together (fewer worse cases: a higher delta *and* a smaller se), so a candidate truly worse
by the margin clears a Wald bound more often than the nominal 2.5%. The score test reads
the variance at the hypothesised difference ``delta0`` instead: with ``b`` cases worse,
``c`` better of ``n``, and the restricted maximum-likelihood discordance rates ``p_b``,
``p_c = p_b + delta0``, ``z = (c - b - n * delta0) / sqrt(n * (p_b + p_c - delta0**2))``.
``p_b`` is the root in range of ``2n p**2 - B p - b * delta0 * (1 - delta0) = 0`` with
``B = b (1 - 3 delta0) + c (1 - delta0) - 2 (n - b - c) delta0``. At ``delta0 = 0`` this is
McNemar's ``(c - b) / sqrt(b + c)``.

``continuity`` moves ``c - b - n * delta0`` that many cases toward zero before dividing (never
past it): the score test on counts is a normal approximation, and without it the chance that
a candidate worse by the margin passes reaches 2.68% (50 cases, half of them discordant,
margin 0.05; computed exactly over the trinomial of worse/better/same cases,
``calibration.exact_binary_rates``); half a case keeps it at or below 2.43% over 30 to 3,000
cases, discordance 2.5% to 50% and margins 0.02 and 0.05.
"""

from __future__ import annotations

import math


def paired_score_z(
    worse: int, better: int, n: int, delta0: float, *, continuity: float = 0.0
) -> float:
    """Score statistic for H0: (better - worse) / n == delta0; large means above ``delta0``."""
    if n < 1 or worse < 0 or better < 0 or worse + better > n:
        raise ValueError(f"need 0 <= worse + better <= n, got {worse}, {better}, {n}")
    if not -1.0 < delta0 < 1.0:
        raise ValueError(f"delta0 must be in (-1, 1), got {delta0}")
    b, c, d = worse, better, delta0
    rest = n - b - c
    big_b = b * (1.0 - 3.0 * d) + c * (1.0 - d) - 2.0 * rest * d
    disc = big_b * big_b + 8.0 * n * b * d * (1.0 - d)
    p_b = (big_b + math.sqrt(max(0.0, disc))) / (4.0 * n)
    p_b = min(max(p_b, max(0.0, -d)), (1.0 - d) / 2.0)
    p_c = p_b + d
    var = n * (p_b + p_c - d * d)
    diff = c - b - n * d
    diff = math.copysign(max(0.0, abs(diff) - continuity), diff)
    if var <= 0.0:
        return math.copysign(math.inf, diff) if diff else 0.0
    return diff / math.sqrt(var)
