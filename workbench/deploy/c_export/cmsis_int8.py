"""The int8 baseline: a network post-training quantized to int8 (``workbench.train.int8_twin`` makes the program) as
C that calls Arm's CMSIS-NN kernels (``arm_convolve_wrapper_s8``, ``arm_fully_connected_per_channel_s8``,
``arm_max_pool_s8``), what TensorFlow Lite Micro runs on a Cortex-M. It is built for the same emulated boards and
measured with the same harness as the binary export (``targets``), so the two compare instruction for instruction.

The program is plain arrays (no torch here): TFLite's int8 scheme, per-channel symmetric weights, asymmetric
per-tensor activations, int32 biases, requantization by a Q31 multiplier and a shift per output channel. ``reference``
computes it in NumPy with CMSIS-NN's rounding, so the C output is checked bit for bit, and accuracy can be measured
without a board.

CMSIS-NN (Apache-2.0) is never copied into the project: ``cmsis_nn_dir`` finds a checkout (an argument,
``$BNN_WORKBENCH_CMSIS_NN``, or ``../shared/third_party/cmsis-nn`` beside the repository) and ``kernel_objects``
compiles the kernels of it once per target into a cache folder.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.deploy.c_export import elf, targets
from workbench.deploy.c_export.arena import Arena
from workbench.deploy.c_export.generator import TEMPLATES, _format, _rows_of, c_name, check_name, fill

CMSIS_ENV = "BNN_WORKBENCH_CMSIS_NN"
GET_CMSIS = (
    "get it with `git clone https://github.com/ARM-software/CMSIS-NN DIR` (Apache-2.0) and pass --cmsis-nn DIR or "
    f"set ${CMSIS_ENV}"
)
_KERNEL_FOLDERS = ("ConvolutionFunctions", "FullyConnectedFunctions", "NNSupportFunctions", "PoolingFunctions")
BOARDS = ("cortex-m4", "cortex-m3")  # the mps2 boards, whose 16 MB PSRAM holds weights that exceed the 4 MB flash


class Int8Error(ValueError):
    """A network the int8 baseline cannot build, or a CMSIS-NN folder that is not one: says which and why."""


# ---------------------------------------------------------------------------------------------- the program


@dataclass
class Int8Layer:
    """One CMSIS-NN call. Shapes are NHWC without N: (H, W, C); a dense layer's are (1, 1, K) -> (1, 1, O)."""

    name: str
    kind: str  # "conv", "dense" or "max_pool"
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    weight: np.ndarray | None = None  # int8: conv (O, KH, KW, C), dense (O, K) over the NHWC-flattened input
    bias: np.ndarray | None = None  # int32 (O,)
    multiplier: np.ndarray | None = None  # int32 (O,): Q31 mantissa of input_scale * weight_scale / output_scale
    shift: np.ndarray | None = None  # int32 (O,)
    kernel: int = 1  # conv kernel or pool size
    stride: int = 1
    padding: tuple[int, int] = (0, 0)  # (top, left); "same" pads symmetric-or-one-more at the end as TFLite does
    input_offset: int = 0  # minus the input's zero point
    output_offset: int = 0  # the output's zero point
    act_min: int = -128
    act_max: int = 127


@dataclass
class Int8Program:
    """The int8 network: input u (uint8, channels-first as the binary export takes it) enters as q = u - 128 in NHWC;
    the last layer's int8 outputs are the scores, ``output_scale * (q - output_zero_point)`` the logits."""

    name: str
    input_shape: tuple[int, ...]  # the spec's, channels-first
    num_classes: int
    layers: list[Int8Layer]
    output_scale: float
    output_zero_point: int
    class_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # where the int8 network is not the float one's exact image

    @property
    def weight_bytes(self) -> int:
        """int8 weights, int32 biases, multipliers and shifts: the constants in flash."""
        return sum(
            sum(a.nbytes for a in (layer.weight, layer.bias, layer.multiplier, layer.shift) if a is not None)
            for layer in self.layers
        )


def quantize_multiplier(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's QuantizeMultiplier: real = q * 2^(shift - 31) with q a Q31 mantissa in [2^30, 2^31)."""
    mantissa, exponent = np.frexp(np.asarray(real, dtype=np.float64))
    q = np.round(mantissa * (1 << 31)).astype(np.int64)
    carry = q == (1 << 31)
    q[carry] //= 2
    exponent = exponent + carry
    q[np.asarray(real) == 0] = 0
    return q.astype(np.int32), exponent.astype(np.int32)


def _requantize(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """CMSIS-NN's arm_nn_requantize (doubling high multiply, then a rounding right shift), on int64 arrays."""
    left, right = np.maximum(shift, 0).astype(np.int64), np.maximum(-shift, 0).astype(np.int64)
    value = (acc.astype(np.int64) << left).astype(np.int32).astype(np.int64)  # val * (1 << left): int32 in C
    high = (value * multiplier.astype(np.int64) + (1 << 30)) >> 31
    high = high.astype(np.int32).astype(np.int64)
    mask = (np.int64(1) << right) - 1
    remainder = high & mask
    result = high >> right
    threshold = (mask >> 1) + (result < 0)
    return result + (remainder > threshold)


def patches(x: np.ndarray, out_hw: tuple[int, int], kernel: int, stride: int, padding: tuple[int, int], pad):
    """(N, OH, OW, KH*KW*C) im2col of an NHWC batch padded with ``pad`` (int8: the input's zero point), in the
    (KH, KW, C) order of the OHWI weights; the far side pads what the output needs (TFLite's "same")."""
    n, h, w, c = x.shape
    (oh, ow), k, s = out_hw, kernel, stride
    top, left = padding
    bottom, right = max((oh - 1) * s + k - h - top, 0), max((ow - 1) * s + k - w - left, 0)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=pad)
    rows = [padded[:, i : i + s * oh : s, j : j + s * ow : s, :] for i in range(k) for j in range(k)]
    return np.stack(rows, axis=3).reshape(n, oh, ow, k * k * c)


def max_pool(x: np.ndarray, out_hw: tuple[int, int], kernel: int, stride: int) -> np.ndarray:
    """Unpadded max pooling of an NHWC batch (arm_max_pool_s8's, and the float twin's)."""
    (oh, ow), k, s = out_hw, kernel, stride
    return np.max([x[:, i : i + s * oh : s, j : j + s * ow : s, :] for i in range(k) for j in range(k)], axis=0)


def input_values(program: Int8Program, u: np.ndarray) -> np.ndarray:
    """uint8 inputs (N, *input_shape) as the int8 NHWC tensor the first layer takes: q = u - 128."""
    u = np.asarray(u, dtype=np.uint8).reshape(len(u), *program.input_shape)
    if u.ndim == 4:
        u = u.transpose(0, 2, 3, 1)
    return u.reshape(len(u), *program.layers[0].in_shape).astype(np.int16) - 128


def reference(program: Int8Program, u: np.ndarray) -> np.ndarray:
    """The int8 scores (N, classes) of uint8 inputs, computed as the CMSIS-NN kernels do (bit for bit)."""
    x = input_values(program, u).astype(np.int64)
    for layer in program.layers:
        if layer.kind == "max_pool":
            x = np.clip(max_pool(x, layer.out_shape[:2], layer.kernel, layer.stride), layer.act_min, layer.act_max)
            continue
        if layer.kind == "conv":
            cols = patches(x, layer.out_shape[:2], layer.kernel, layer.stride, layer.padding, -layer.input_offset)
            w = layer.weight.reshape(len(layer.weight), -1)
        else:
            cols = x.reshape(len(x), 1, 1, -1)
            w = layer.weight
        # exact in float64: |(x + offset) * w| < 2^16, and fewer than 2^37 of them are summed
        acc = np.rint((cols + layer.input_offset).astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
        acc = acc + layer.bias
        y = _requantize(acc, layer.multiplier, layer.shift) + layer.output_offset
        x = np.clip(y, layer.act_min, layer.act_max).reshape(len(x), *layer.out_shape)
    return x.reshape(len(x), -1).astype(np.int32)


def logits(program: Int8Program, scores: np.ndarray) -> np.ndarray:
    return (program.output_scale * (scores.astype(np.float64) - program.output_zero_point)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- CMSIS-NN


def cmsis_nn_dir(folder: str | Path | None = None) -> Path:
    """The CMSIS-NN checkout to build against: ``folder``, else $BNN_WORKBENCH_CMSIS_NN, else
    ../shared/third_party/cmsis-nn beside the repository; Int8Error saying how to get it when there is none."""
    if folder is None:
        folder = os.environ.get(CMSIS_ENV) or Path(__file__).resolve().parents[4] / "shared/third_party/cmsis-nn"
    folder = Path(folder).expanduser()
    if not (folder / "Include" / "arm_nnfunctions.h").is_file():
        raise Int8Error(f"no CMSIS-NN at {folder} (expected Include/arm_nnfunctions.h there): {GET_CMSIS}")
    return folder.resolve()


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bnn-workbench" / "cmsis-nn"


def kernel_objects(cmsis: Path, which: str | targets.Target, timeout: float = 600) -> list[Path]:
    """CMSIS-NN's int8 kernels compiled for a target (-O2, one section per function, so a link keeps only what a
    model calls), cached per checkout and target; recompiled when a source is newer than its object."""
    t = targets.target(which)
    flags = ("-O2", *t.cpu_flags, *targets.BARE_METAL, "-I", str(cmsis / "Include"))
    key = hashlib.sha1(f"{cmsis}|{t.cc}|{' '.join(flags)}".encode()).hexdigest()[:16]
    out = _cache_root() / f"{t.name}-{key}"
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted(
        path
        for folder in _KERNEL_FOLDERS
        for path in (cmsis / "Source" / folder).glob("*.c")
        if not path.stem.endswith(("_f16", "_f32", "_flt"))
    )
    if not sources:
        raise Int8Error(f"{cmsis}/Source holds no CMSIS-NN kernels: {GET_CMSIS}")
    objects, pending = [], []
    for source in sources:
        obj = out / f"{source.parent.name}-{source.stem}.o"
        objects.append(obj)
        if not obj.exists() or obj.stat().st_mtime < source.stat().st_mtime:
            pending.append((source, obj))
    running = []
    for source, obj in pending:
        running.append(subprocess.Popen([t.cc, *flags, "-c", str(source), "-o", str(obj)], stderr=subprocess.PIPE))
        if len(running) >= (os.cpu_count() or 2):
            _wait(running.pop(0), timeout)
    for process in running:
        _wait(process, timeout)
    return objects


def _wait(process: subprocess.Popen, timeout: float) -> None:
    _, err = process.communicate(timeout=timeout)
    if process.returncode:
        raise targets.BuildError(f"{' '.join(map(str, process.args))} exited {process.returncode}:\n{err.decode()}")


# ---------------------------------------------------------------------------------------------- the C library


@dataclass
class Int8Library:
    name: str
    files: dict[str, str]
    weights_blob: bytes
    arena_bytes: int
    weight_bytes: int
    num_classes: int
    input_bytes: int


_LINKER = """/* {name}.ld: QEMU {machine} ({cpu}) for the int8 baseline: code and small constants in FLASH at 0x0,
   the int8 weights (.rodata.int8_weights) in the board's 16 MB PSRAM at 0x21000000 (binary-mlp's 5.8 MB exceed the 4 MB
   of the code memory; QEMU models no wait states, so where they sit does not change the instruction count). */
MEMORY
{{
    FLASH (rx) : ORIGIN = 0x00000000, LENGTH = {flash}
    PSRAM (r) : ORIGIN = 0x21000000, LENGTH = 16M
    RAM (rwx) : ORIGIN = 0x20000000, LENGTH = {ram}
}}

SECTIONS
{{
    .text : {{
        KEEP(*(.vectors))
        *(.text*)
        . = ALIGN(8);
    }} > FLASH
    .weights : {{
        *(.rodata.int8_weights*)
    }} > PSRAM
    .rodata : {{
        *(.rodata*)
        . = ALIGN(8);
    }} > FLASH
    .ARM.exidx : {{ *(.ARM.exidx* .gnu.linkonce.armexidx.*) }} > FLASH
    .data : {{
        . = ALIGN(8);
        __data_start = .;
        *(.data*)
        . = ALIGN(8);
        __data_end = .;
    }} > RAM AT > FLASH
    __data_load = LOADADDR(.data);
    .bss (NOLOAD) : {{
        . = ALIGN(8);
        __bss_start = .;
        *(.bss*)
        *(COMMON)
        . = ALIGN(8);
        __bss_end = .;
    }} > RAM
    __stack_top = ORIGIN(RAM) + LENGTH(RAM);
    end = __bss_end;
}}
"""


def _dims(shape) -> str:
    h, w, c = shape
    return f"{{.n = 1, .h = {h}, .w = {w}, .c = {c}}}"


def _conv_scratch(layer: Int8Layer) -> int:
    """arm_convolve_s8's im2col buffer on a DSP core (two columns of int16); the C checks it at run time."""
    cols = layer.kernel * layer.kernel * layer.in_shape[2]
    return 2 * (-(-cols // 4) * 4) * 2


def generate_int8(
    program: Int8Program, name: str | None = None, selftest_input: np.ndarray | None = None
) -> Int8Library:
    """The C library of an int8 program: the binary export's API (so the same harness runs it), kernels from
    CMSIS-NN, weights in a binary blob that <name>_weights.S includes."""
    name = check_name(name or c_name(program.name) + "_int8")
    upper = name.upper()
    arena = Arena()
    input_bytes = math.prod(program.input_shape)
    steps = [arena.new(math.prod(program.layers[0].in_shape), 0, "input int8")]
    scratch = {}
    blob, arrays, offsets = bytearray(), [], {}
    for step, layer in enumerate(program.layers, start=1):
        arena.use(steps[-1], step)
        if layer.kind == "conv":
            scratch[step] = arena.new(_conv_scratch(layer), step, f"{layer.name} im2col")
        steps.append(arena.new(math.prod(layer.out_shape), step, f"{layer.name} output"))
        if layer.weight is not None:
            offsets[step] = len(blob)
            blob += np.ascontiguousarray(layer.weight, dtype=np.int8).tobytes()
            blob += bytes(-len(blob) % 4)
            for what, values in (("bias", layer.bias), ("mult", layer.multiplier), ("shift", layer.shift)):
                items = _format(np.asarray(values, dtype=np.int32), "int32_t")
                arrays.append(f"static const int32_t L{step}_{what}[{len(items)}] = {{\n{_rows_of(items)}\n}};")
    last = len(program.layers) + 1
    arena.use(steps[-1], last)
    arena_bytes = arena.place()

    def at(buffer: int) -> str:
        return f"({name}_arena.bytes + {arena.buffers[buffer].offset})"

    c, *hw = program.input_shape if len(program.input_shape) == 3 else (program.input_shape[0], 1, 1)
    h, w = hw
    body = [
        "    int32_t i;",
        "    int8_t *x = (int8_t *)" + at(steps[0]) + ";",
        "    /* uint8 channels-first -> int8 NHWC: q = u - 128 */",
        f"    for (i = 0; i < {input_bytes}; i++) x[(i % {h * w}) * {c} + i / {h * w}] = (int8_t)(input[i] - 128);",
    ]
    for step, layer in enumerate(program.layers, start=1):
        x, y = at(steps[step - 1]), at(steps[step])
        act = f"{{.min = {layer.act_min}, .max = {layer.act_max}}}"
        body.append(f"    /* {layer.name}: {layer.kind} {list(layer.in_shape)} -> {list(layer.out_shape)} */")
        body.append("    {")
        if layer.kind == "max_pool":
            body += [
                f"        const cmsis_nn_pool_params p = {{.stride = {{.w = {layer.stride}, .h = {layer.stride}}}, "
                f".padding = {{.w = 0, .h = 0}}, .activation = {act}}};",
                f"        const cmsis_nn_dims in = {_dims(layer.in_shape)}, out = {_dims(layer.out_shape)};",
                f"        const cmsis_nn_dims k = {{.n = 1, .h = {layer.kernel}, .w = {layer.kernel}, .c = 1}};",
                "        cmsis_nn_context ctx = {.buf = NULL, .size = 0};",
                f"        if (arm_max_pool_s8(&ctx, &p, &in, (const int8_t *){x}, &k, &out, (int8_t *){y}) != "
                "ARM_CMSIS_NN_SUCCESS) return -2;",
            ]
        else:
            o = layer.out_shape[2]
            weights = f"({name}_weights + {offsets[step]})"
            quant = f"{{.multiplier = (int32_t *)L{step}_mult, .shift = (int32_t *)L{step}_shift}}"
            if layer.kind == "conv":
                kh = kw = layer.kernel
                body += [
                    f"        const cmsis_nn_conv_params p = {{.input_offset = {layer.input_offset}, "
                    f".output_offset = {layer.output_offset}, .stride = {{.w = {layer.stride}, .h = {layer.stride}}}, "
                    f".padding = {{.w = {layer.padding[1]}, .h = {layer.padding[0]}}}, .dilation = {{.w = 1, .h = 1}}, "
                    f".activation = {act}}};",
                    f"        const cmsis_nn_per_channel_quant_params q = {quant};",
                    f"        const cmsis_nn_dims in = {_dims(layer.in_shape)}, out = {_dims(layer.out_shape)};",
                    f"        const cmsis_nn_dims k = {{.n = {o}, .h = {kh}, .w = {kw}, .c = {layer.in_shape[2]}}};",
                    f"        const cmsis_nn_dims b = {{.n = 1, .h = 1, .w = 1, .c = {o}}};",
                    f"        cmsis_nn_context ctx = {{.buf = {at(scratch[step])}, .size = {_conv_scratch(layer)}}};",
                    f"        if (arm_convolve_wrapper_s8_get_buffer_size(&p, &in, &k, &out) > {_conv_scratch(layer)}) "
                    "return -3;",
                    f"        if (arm_convolve_wrapper_s8(&ctx, &p, &q, &in, (const int8_t *){x}, &k, {weights}, &b, "
                    f"L{step}_bias, &out, (int8_t *){y}) != ARM_CMSIS_NN_SUCCESS) return -2;",
                ]
            else:
                k = layer.in_shape[0] * layer.in_shape[1] * layer.in_shape[2]
                body += [
                    f"        const cmsis_nn_fc_params p = {{.input_offset = {layer.input_offset}, .filter_offset = 0, "
                    f".output_offset = {layer.output_offset}, .activation = {act}}};",
                    f"        const cmsis_nn_per_channel_quant_params q = {quant};",
                    f"        const cmsis_nn_dims in = {{.n = 1, .h = 1, .w = 1, .c = {k}}};",
                    f"        const cmsis_nn_dims k = {{.n = {k}, .h = 1, .w = 1, .c = {o}}};",
                    f"        const cmsis_nn_dims b = {{.n = 1, .h = 1, .w = 1, .c = {o}}};",
                    f"        const cmsis_nn_dims out = {{.n = 1, .h = 1, .w = 1, .c = {o}}};",
                    "        cmsis_nn_context ctx = {.buf = NULL, .size = 0};",
                    f"        if (arm_fully_connected_per_channel_s8(&ctx, &p, &q, &in, (const int8_t *){x}, &k, "
                    f"{weights}, &b, L{step}_bias, &out, (int8_t *){y}) != ARM_CMSIS_NN_SUCCESS) return -2;",
                ]
        body.append("    }")
    classes = program.num_classes
    final = at(steps[-1])
    body += [
        "    {",
        f"        const int8_t *out = (const int8_t *){final};",
        "        int best = 0;",
        f"        for (i = 0; i < {classes}; i++) {{",
        "            if (scores) scores[i] = out[i];",
        "            if (out[i] > out[best]) best = (int)i;",
        "        }",
        "        return best;",
        "    }",
    ]
    names = ",\n".join("    " + f'"{n}"' for n in (program.class_names or [str(i) for i in range(classes)]))
    scale = _format(np.array([program.output_scale], np.float64), "double")[0]
    source = "\n".join(
        [
            f"/* {name}.c: the int8 post-training-quantized twin of {program.name!r} on CMSIS-NN kernels,",
            " * generated by bnn-workbench (the baseline of `bnn-workbench bench MODEL --target cortex-m4`). */",
            f'#include "{name}.h"',
            "",
            "#include <stddef.h>",
            "",
            '#include "arm_nnfunctions.h"',
            "",
            f"extern const int8_t {name}_weights[]; /* {name}_weights.S: {len(blob):,} bytes */",
            "",
            *[a + "\n" for a in arrays],
            f"const char *const {name}_class_names[{upper}_NUM_CLASSES] = {{\n{names}\n}};",
            "",
            f"static union {{\n    int32_t align;\n    int8_t bytes[{max(arena_bytes, 8)}];\n}} {name}_arena;",
            "",
            f"void {name}_logits(const {name}_score_t *scores, float *logits) {{",
            "    int32_t i;",
            f"    for (i = 0; i < {classes}; i++) logits[i] = (float)({scale} * (double)(scores[i] - "
            f"({program.output_zero_point})));",
            "}",
            "",
            f"int {name}_predict(const uint8_t *input, {name}_score_t *scores) {{",
            *body,
            "}",
            "",
        ]
    )
    header = "\n".join(
        [
            f"/* {name}.h: the int8 CMSIS-NN twin of {program.name!r}: the same API as the binary export. */",
            f"#ifndef {upper}_H",
            f"#define {upper}_H",
            "#include <stdint.h>",
            f"#define {upper}_INPUT_BYTES {input_bytes}",
            f"#define {upper}_NUM_CLASSES {classes}",
            f"#define {upper}_ARENA_BYTES {arena_bytes}",
            f"#define {upper}_WEIGHT_BYTES {program.weight_bytes}",
            f"#define {upper}_SCORES_ARE_DOTS 1 /* scores: the last layer's int8 outputs */",
            f"typedef int32_t {name}_score_t;",
            f"int {name}_predict(const uint8_t *input, {name}_score_t *scores);",
            f"void {name}_logits(const {name}_score_t *scores, float *logits);",
            f"extern const char *const {name}_class_names[{upper}_NUM_CLASSES];",
            f"int {name}_selftest(void (*print)(const char *line));",
            "#endif",
            "",
        ]
    )
    assembly = "\n".join(
        [
            f"/* {name}_weights.S: the int8 weights of every layer, back to back, each padded to 4 bytes. */",
            '    .section .rodata.int8_weights,"a"',
            "    .balign 4",
            f"    .global {name}_weights",
            f"{name}_weights:",
            f'    .incbin "{name}_weights.bin"',
            f"    .size {name}_weights, . - {name}_weights",
            "",
        ]
    )
    if selftest_input is None:
        selftest_input = np.random.default_rng(0).integers(0, 256, program.input_shape, dtype=np.uint8)
    selftest_input = np.asarray(selftest_input, dtype=np.uint8).reshape(program.input_shape)
    expected = reference(program, selftest_input[None])[0]
    selftest = fill(
        (TEMPLATES / "selftest.c").read_text(),
        dict(
            name=name,
            NAME=upper,
            selftest_source="the NumPy reference of the int8 program",
            selftest_input=_rows_of(_format(selftest_input, "uint8_t"), 24),
            selftest_expected=_rows_of(_format(expected, "int32_t"), 8),
            selftest_class=int(np.argmax(expected)),
        ),
    )
    files = {f"{name}.h": header, f"{name}.c": source, f"{name}_weights.S": assembly, f"{name}_selftest.c": selftest}
    return Int8Library(name, files, bytes(blob), arena_bytes, program.weight_bytes, classes, input_bytes)


def write_int8(library: Int8Library, folder: str | Path) -> Path:
    """The library, the weights blob, the board harness and a linker script per mps2 board in ``folder``."""
    folder = Path(folder)
    (folder / "cortex_m").mkdir(parents=True, exist_ok=True)
    files = dict(library.files)
    values = dict(name=library.name, NAME=library.name.upper())
    for part in ("startup.c", "semihost.h"):
        files[f"cortex_m/{part}"] = (TEMPLATES / "cortex_m" / part).read_text()
    files["cortex_m/harness.c"] = fill((TEMPLATES / "cortex_m" / "harness.c").read_text(), values)
    for board in BOARDS:
        t = targets.target(board)
        files[f"cortex_m/{board}.ld"] = _LINKER.format(
            name=board, machine=t.machine, cpu=t.cpu, flash=t.flash, ram=t.ram
        )
    for relative, text in files.items():
        (folder / relative).write_text(text, encoding="utf-8")
    (folder / f"{library.name}_weights.bin").write_bytes(library.weights_blob)
    return folder


# ---------------------------------------------------------------------------------------------- build and measure


def model_sizes(folder: Path, library: Int8Library, t: targets.Target, cmsis: Path, objects: list[Path]) -> dict:
    """The model's own sections: its C, its weights and the CMSIS-NN functions it calls, partially linked from
    <name>_predict and <name>_logits (what the binary export's <name>.c alone holds, runtime included)."""
    name = library.name
    compile_flags = [*t.cflags, "-isystem", str(cmsis / "Include"), "-I."]
    for source in (f"{name}.c", f"{name}_weights.S"):
        targets._run([t.cc, *compile_flags, "-c", source, "-o", f"{source}.o"], folder, 600)
    linked = f"{name}-{t.name}-model.o"
    command = [
        t.cc,
        *t.cpu_flags,
        "-nostdlib",
        "-r",
        "-Wl,--gc-sections",
        f"-Wl,-u,{name}_predict",
        f"-Wl,-u,{name}_logits",
        f"-Wl,-e,{name}_predict",
        "-o",
        linked,
        f"{name}.c.o",
        f"{name}_weights.S.o",
        *map(str, objects),
    ]
    targets._run(command, folder, 600)
    return elf.sizes(folder / linked)


@dataclass
class Int8Measurement:
    footprint: targets.Footprint
    result: targets.RunResult
    matches_reference: int  # inputs whose int8 scores equal the NumPy reference's


def build_and_measure(
    program: Int8Program,
    library: Int8Library,
    folder: str | Path,
    which: str,
    inputs: np.ndarray,
    cmsis: str | Path | None = None,
    timeout: float = 600,
) -> Int8Measurement:
    """Build the int8 library with CMSIS-NN for an mps2 board, run it on inputs under QEMU, compare its scores with
    the NumPy reference and measure it as ``footprint`` does the binary export."""
    t = targets.target(which)
    if t.name not in BOARDS:
        raise Int8Error(f"the int8 baseline builds for {', '.join(BOARDS)} (mps2 boards), not {t.name}")
    missing = t.missing()
    if missing:
        raise ValueError(f"target {t.name}: missing {', '.join(missing)} (see docs/DEPLOY.md for the packages)")
    cmsis, folder = cmsis_nn_dir(cmsis), Path(folder)
    write_int8(library, folder)
    objects = kernel_objects(cmsis, t, timeout)
    extra = ("-isystem", str(cmsis / "Include"), f"{library.name}_weights.S", *map(str, objects))
    targets.build(folder, library.name, t, extra=extra, timeout=timeout)
    result = targets.run(folder, library.name, t, inputs, library.num_classes, True, timeout)
    sizes = model_sizes(folder, library, t, cmsis, objects)
    footprint = targets.footprint(folder, library.name, t, result, model=sizes)
    expected = reference(program, inputs)
    return Int8Measurement(footprint, result, int((result.scores == expected).all(axis=1).sum()))
