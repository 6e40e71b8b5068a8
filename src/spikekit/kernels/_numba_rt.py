"""What the generated numba modules import to run on torch's own OpenMP team.

A generated kernel runs its column chunks as a C callback handed to ``GOMP_parallel`` of the
OpenMP runtime torch loaded (see :func:`spikekit.kernels.numba_cpu.run_columns` for why).
Every thread of the team calls the same callback with one argument: the address of an int64
array that packs the kernel's arguments. The callback unpacks them with the helpers below and
claims chunks of columns through an atomic counter until none are left, so a thread that
starts late just takes fewer chunks.

Packed layout: ``HEAD`` header slots ``[counter address, chunks, columns]``, then ``SLOT``
slots per kernel argument: ``[data address, dim 0, dim 1, dim 2]`` for an array,
``[value, 0, 0, 0]`` for an integer.

Only generated modules import this module (it imports numba). numba's cache of a generated
module does not notice a change here: bump ``numba_cpu._VERSION`` with any change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import carray, njit, types
from numba.core.extending import intrinsic, overload

HEAD = 3
SLOT = 4
ALIGN = 16  # chunk edges on 64-byte lines (float32), so threads never share a cache line


@intrinsic
def _fetch_add(typingctx, addr):  # type: ignore[no-untyped-def]
    """Atomically ``*addr += 1`` on an int64 at address ``addr``; returns the old value."""
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        return builder.atomic_rmw("add", ptr, ir.Constant(ir.IntType(64), 1), "monotonic")

    return sig, codegen


@intrinsic
def _voidptr(typingctx, addr):  # type: ignore[no-untyped-def]
    sig = types.voidptr(types.int64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return sig, codegen


@njit(inline="always")
def packed(addr, n_args):  # type: ignore[no-untyped-def]
    """The packed int64 array at ``addr`` holding ``n_args`` arguments."""
    return carray(_voidptr(addr), (HEAD + SLOT * n_args,), types.int64)


@njit(inline="always")
def arg1(d, k, dt):  # type: ignore[no-untyped-def]
    o = HEAD + SLOT * k
    return carray(_voidptr(d[o]), (d[o + 1],), dt)


@njit(inline="always")
def arg2(d, k, dt):  # type: ignore[no-untyped-def]
    o = HEAD + SLOT * k
    return carray(_voidptr(d[o]), (d[o + 1], d[o + 2]), dt)


@njit(inline="always")
def arg3(d, k, dt):  # type: ignore[no-untyped-def]
    o = HEAD + SLOT * k
    return carray(_voidptr(d[o]), (d[o + 1], d[o + 2], d[o + 3]), dt)


@njit(inline="always")
def argint(d, k):  # type: ignore[no-untyped-def]
    return d[HEAD + SLOT * k]


@njit(inline="always")
def claim(d):  # type: ignore[no-untyped-def]
    """The next unclaimed chunk ``(lo, hi)`` of columns, or ``(0, 0)`` when all are taken."""
    nch = d[1]
    m = d[2]
    i = _fetch_add(d[0])
    if i >= nch:
        return 0, 0
    lo = (m * i // nch) // ALIGN * ALIGN
    hi = m if i == nch - 1 else (m * (i + 1) // nch) // ALIGN * ALIGN
    return lo, hi


# ----------------------------------------------------------------------------- exp
# ``exp`` that LLVM can vectorise. numba lowers ``np.exp`` to a libm call, and a loop with a
# call in it stays scalar unless llvmlite was built with Intel's SVML (pip wheels are not), so
# EIF and AdEx ran at 1.25-1.27x the bare Linear (n = 2048) where the others ran at 1.00-1.10x.
# This one is arithmetic only: exp(x) = 2**k * exp(r) with k = round(x / ln 2) and
# |r| <= ln(2) / 2 (ln 2 split in two so k * ln2_hi is exact), exp(r) by its Taylor series
# (terms to r**7 for float32, r**13 for float64, truncation below 0.1 ulp), and 2**k built
# from its bits, in two halves so that results in the subnormal range come out right.
# Within 1 ulp of the exactly rounded value in float32 and float64 (numpy's float32 exp is off by
# up to 2.4 ulp, torch's by 0.6): tests/test_kernels.py checks it.


def _pow2(bits: int, bias: int, mantissa: int, name: str) -> Any:
    """An intrinsic ``2.0 ** k`` for an integer ``k`` within the normal exponent range of an
    IEEE float of ``bits`` bits, built from the bits (exponent ``k + bias`` above ``mantissa``
    bits of zeros)."""
    ity = ir.IntType(bits)
    fty = ir.FloatType() if bits == 32 else ir.DoubleType()
    nb_int, nb_float = (types.int32, types.float32) if bits == 32 else (types.int64, types.float64)

    def pow2(typingctx, k):  # type: ignore[no-untyped-def]
        sig = nb_float(nb_int)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            biased = builder.add(args[0], ir.Constant(ity, bias))
            return builder.bitcast(builder.shl(biased, ir.Constant(ity, mantissa)), fty)

        return sig, codegen

    pow2.__name__ = pow2.__qualname__ = name
    return intrinsic(pow2)


_pow2_f32 = _pow2(32, 127, 23, "_pow2_f32")  # k in [-126, 127]
_pow2_f64 = _pow2(64, 1023, 52, "_pow2_f64")  # k in [-1022, 1023]


def vexp(x):  # type: ignore[no-untyped-def]
    """``exp(x)`` for a float32 or float64 scalar, vectorisable (numba only)."""
    raise NotImplementedError("spikekit.kernels._numba_rt.vexp runs inside numba functions only")


@overload(vexp)
def _vexp_impl(x):  # type: ignore[no-untyped-def]
    if x == types.float32:
        f, i = np.float32, np.int32

        def exp32(x):  # type: ignore[no-untyped-def]
            y = min(max(x, f(-104.0)), f(89.0))
            kf = np.floor(y * f(1.4426950408889634) + f(0.5))
            r = (y - kf * f(0.693359375)) - kf * f(-2.12194440e-4)
            p = f(1.0 / 5040.0)
            p = p * r + f(1.0 / 720.0)
            p = p * r + f(1.0 / 120.0)
            p = p * r + f(1.0 / 24.0)
            p = p * r + f(1.0 / 6.0)
            p = p * r + f(0.5)
            p = f(1.0) + (r + r * r * p)  # the small terms first: one rounding near 1
            k = i(kf)
            k1 = k >> 1
            e = p * _pow2_f32(k1) * _pow2_f32(k - k1)
            return x if x != x else e

        return exp32
    if x == types.float64:
        f, i = np.float64, np.int64

        def exp64(x):  # type: ignore[no-untyped-def]
            y = min(max(x, f(-746.0)), f(710.0))
            kf = np.floor(y * f(1.4426950408889634) + f(0.5))
            r = (y - kf * f(6.93147180369123816490e-01)) - kf * f(1.90821492927058770002e-10)
            p = f(1.0 / 6227020800.0)
            p = p * r + f(1.0 / 479001600.0)
            p = p * r + f(1.0 / 39916800.0)
            p = p * r + f(1.0 / 3628800.0)
            p = p * r + f(1.0 / 362880.0)
            p = p * r + f(1.0 / 40320.0)
            p = p * r + f(1.0 / 5040.0)
            p = p * r + f(1.0 / 720.0)
            p = p * r + f(1.0 / 120.0)
            p = p * r + f(1.0 / 24.0)
            p = p * r + f(1.0 / 6.0)
            p = p * r + f(0.5)
            p = f(1.0) + (r + r * r * p)
            k = i(kf)
            k1 = k >> 1
            e = p * _pow2_f64(k1) * _pow2_f64(k - k1)
            return x if x != x else e

        return exp64
    return None
