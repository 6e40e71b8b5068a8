"""What generated Triton kernels import: the ops of a step program that ``triton.language``
has no exact counterpart for.

Each is built from ``tl`` core ops only (never ``libdevice``), so the code that runs on a GPU
is the code that ``TRITON_INTERPRET=1`` runs on a CPU in the parity tests: the interpreter
implements ``tl`` but not ``libdevice``. Accuracy, checked against torch by
``tests/test_triton.py`` on ordinary and special values: a few ulp in float32 and float64,
except ``pow`` in float64 (``exp(b log a)``: up to ``|b log a|`` ulp).
Division and square roots are rounded correctly in float32 (``div_rn``/``sqrt_rn``; Triton's
``/`` and ``sqrt`` are approximations there), so a value on the threshold spikes as it does
in the reference.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def div(a, b):
    if a.dtype == tl.float32:
        return tl.div_rn(a, b)
    else:
        return a / b


@triton.jit
def sqrt(a):
    if a.dtype == tl.float32:
        return tl.sqrt_rn(a)
    else:
        return tl.sqrt(a)


@triton.jit
def expm1(x):
    # Kahan: (u - 1) * x / log(u) cancels the rounding error of u = exp(x)
    u = tl.exp(x)
    r = div((u - 1) * x, tl.log(u))
    r = tl.where(u == 1, x, r)
    r = tl.where(x > 40, u, r)  # exp(40) > 2**53: u - 1 == u in float64 already
    return tl.where(x < -40, -1.0, r)


@triton.jit
def log1p(x):
    u = x + 1
    r = div(tl.log(u) * x, u - 1)
    r = tl.where(u == 1, x, r)
    return tl.where(x > 1e15, tl.log(x), r)  # 1 + x == x: the correction would be inf / inf


@triton.jit
def tanh(x):
    a = tl.abs(x)
    e = expm1(2 * a)
    r = div(e, e + 2)
    r = tl.where(a > 20, 1.0, r)  # tanh(20) rounds to 1 in float64; e / (e + 2) is inf / inf
    return tl.where(x < 0, -r, r)


@triton.jit
def atan(x):
    a = tl.abs(x)
    inv = a > 1
    one = tl.full(a.shape, 1.0, a.dtype)
    z = tl.where(inv, div(one, a), a)
    # atan(z) = 2 atan(z / (1 + sqrt(1 + z^2))), twice: |z| <= tan(pi / 16) ~ 0.199, where the
    # series to z^23 is below float64 rounding
    z = div(z, 1 + sqrt(1 + z * z))
    z = div(z, 1 + sqrt(1 + z * z))
    z2 = z * z
    p = div(one, 23)
    p = div(one, 21) - z2 * p
    p = div(one, 19) - z2 * p
    p = div(one, 17) - z2 * p
    p = div(one, 15) - z2 * p
    p = div(one, 13) - z2 * p
    p = div(one, 11) - z2 * p
    p = div(one, 9) - z2 * p
    p = div(one, 7) - z2 * p
    p = div(one, 5) - z2 * p
    p = div(one, 3) - z2 * p
    r = 4 * (z - z * z2 * p)
    r = tl.where(inv, tl.full(r.shape, 1.5707963267948966, r.dtype) - r, r)
    return tl.where(x < 0, -r, r)


@triton.jit
def negative(a):
    """``a < 0``, -0.0 included (the sign bit, which ``atan2`` and ``pow`` read)."""
    return (a < 0) | (div(tl.full(a.shape, 1.0, a.dtype), a) < 0)


@triton.jit
def infinite(a):
    return (a * 0.5 == a) & (a != 0)  # only 0 and +-inf equal their half; NaN equals nothing


@triton.jit
def atan2(y, x):
    # both infinite: the angle of the diagonal (y / x would be NaN)
    q = tl.where(infinite(y) & infinite(x), sign(y) * sign(x), div(y, x))
    r = atan(q)
    pi = tl.full(r.shape, 3.141592653589793, r.dtype)
    half = tl.full(r.shape, 1.5707963267948966, r.dtype)
    down = negative(y)
    r = tl.where(x == 0, tl.where(y == 0, 0.0, tl.where(down, -half, half)), r)
    r = tl.where(y == 0, tl.where(negative(x), tl.where(down, -pi, pi), 0.0), r)
    r = tl.where(negative(x) & (x != 0) & (y != 0), tl.where(down, r - pi, r + pi), r)
    r = tl.where(down & (r == 0), -r, r)
    return tl.where((x != x) | (y != y), x + y, r)


@triton.jit
def pow(a, b):
    if a.dtype == tl.float32:  # exp(b log a) loses |b log a| ulp: float64 inside hides that
        return _pow(a.to(tl.float64), b.to(tl.float64)).to(tl.float32)
    else:
        return _pow(a, b)


@triton.jit
def _pow(a, b):
    m = tl.abs(a)
    r = tl.exp(b * tl.log(m))
    r = tl.where(m == 1, 1.0, r)  # (-1) ** inf is 1; exp(inf * 0) is not
    whole = tl.floor(b) == b  # +-inf count as even integers
    odd = whole & (tl.floor(b * 0.5) * 2 != b)
    r = tl.where(negative(a) & odd, -r, r)
    nan = sqrt(-m - 1)  # a NaN of the right type
    r = tl.where((a < 0) & ~whole & ~infinite(a), nan, r)  # a negative base to a fractional power
    return tl.where((b == 0) | (a == 1), 1.0, r)


@triton.jit
def sign(x):
    return tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, 0.0))  # torch.sign(nan) is 0
