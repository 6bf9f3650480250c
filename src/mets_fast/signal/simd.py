"""Eight float64 lanes as one Numba value, for the recursive filters.

Numba vectorises loops whose iterations are independent, but a recursive filter's loop is not:
each sample waits for the previous one.  Eight *signals* filtered together are independent,
and this module gives Numba a type for them: ``Vec8`` is an LLVM ``<8 x double>``, so eight
filter states live in one SIMD register and advance in one instruction.  The operations are the
few the filters need, written as Numba intrinsics: load and store a row of a C-contiguous
``(m, 8)`` float64 array, broadcast a scalar, multiply, and fused multiply-add.  Where the CPU
has narrower registers, LLVM splits the vector (two AVX2 registers, four SSE2 registers).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

LANES = 8
_VECTOR = ir.VectorType(ir.DoubleType(), LANES)


class Vec8Type(types.Type):
    def __init__(self):
        super().__init__(name="Vec8")


vec8 = Vec8Type()


@register_model(Vec8Type)
class _Vec8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


def _broadcast(builder, scalar):
    v = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), scalar,
                               ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(ir.IntType(32), LANES),
                                                    [0] * LANES))


def _row_pointer(context, builder, array_type, array, row):
    a = context.make_array(array_type)(context, builder, array)
    item = cgutils.get_item_pointer(context, builder, array_type, a,
                                    [row, context.get_constant(types.intp, 0)])
    return builder.bitcast(item, _VECTOR.as_pointer())


@intrinsic
def load(typingctx, array, row):
    """Row `row` of a C-contiguous (m, 8) float64 array (no bounds check)."""
    def codegen(context, builder, sig, args):
        return builder.load(_row_pointer(context, builder, sig.args[0], args[0], args[1]),
                            align=8)
    return vec8(array, row), codegen


@intrinsic
def store(typingctx, array, row, value):
    """Writes the eight lanes into row `row` of a C-contiguous (m, 8) float64 array."""
    def codegen(context, builder, sig, args):
        builder.store(args[2], _row_pointer(context, builder, sig.args[0], args[0], args[1]),
                      align=8)
        return context.get_dummy_value()
    return types.none(array, row, value), codegen


@intrinsic
def scale(typingctx, a, s):
    """a * s for a float s."""
    def codegen(context, builder, sig, args):
        return builder.fmul(args[0], _broadcast(builder, args[1]))
    return vec8(vec8, types.float64), codegen


@intrinsic
def fma(typingctx, a, s, c):
    """a * s + c for a float s, fused (one rounding)."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3),
                                            "llvm.fma.v8f64")
        return builder.call(fn, [args[0], _broadcast(builder, args[1]), args[2]])
    return vec8(vec8, types.float64, vec8), codegen
