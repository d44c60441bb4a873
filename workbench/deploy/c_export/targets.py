"""Where an exported C model runs: the compilers, flags and emulators of each target, stated once for the generated
Makefile, the tests and ``bnn-workbench footprint``; building, running on inputs, and measuring flash, RAM, stack and
emulated instructions per inference.

Hosted targets build the example ``main.c`` (``classify --batch``); the Cortex-M boards build ``cortex_m/harness.c``
and run it on QEMU with semihosting (inputs from a host file, results to one), under ``-icount shift=0`` so that one
emulated instruction is one nanosecond of the board's clock: SysTick ticks around ``predict()`` count instructions.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.deploy.c_export import elf

STRICT = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off")
BARE_METAL = ("-ffunction-sections", "-fdata-sections")
BARE_METAL_LINK = ("-nostartfiles", "-Wl,--gc-sections", "--specs=nano.specs", "--specs=nosys.specs")


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    cc: str
    cpu_flags: tuple[str, ...] = ()
    link_flags: tuple[str, ...] = ()
    emulator: tuple[str, ...] = ()  # runs a hosted program (qemu-aarch64)
    machine: str | None = None  # QEMU system board of a bare-metal target
    cpu: str = ""
    flash: str = ""
    ram: str = ""
    clock_hz: int = 0  # SysTick's core clock on that QEMU board

    @property
    def bare_metal(self) -> bool:
        return self.machine is not None

    @property
    def cflags(self) -> tuple[str, ...]:
        return STRICT + self.cpu_flags + (BARE_METAL if self.bare_metal else ())

    @property
    def program(self) -> str:
        return (
            f"{self.name}.elf" if self.bare_metal else ("classify" if self.name == "host" else f"classify-{self.name}")
        )

    def tools(self) -> list[str]:
        tools = [self.cc, *self.emulator[:1]]
        return tools + ["qemu-system-arm"] if self.bare_metal else tools

    def missing(self) -> list[str]:
        """The tools of this target that are not installed (a test skips naming them)."""
        missing = [tool for tool in self.tools() if shutil.which(tool) is None]
        if self.bare_metal and not missing and not _has_newlib(self.cc):
            missing.append("libnewlib-arm-none-eabi (newlib for arm-none-eabi-gcc)")
        return missing


_M = dict(cc="arm-none-eabi-gcc", link_flags=BARE_METAL_LINK)
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("host", "this machine (gcc)", "gcc"),
        Target("host-clang", "this machine (clang)", "clang"),
        Target(
            "aarch64",
            "64-bit Arm Linux, static, run by qemu-aarch64",
            "aarch64-linux-gnu-gcc",
            link_flags=("-static",),
            emulator=("qemu-aarch64",),
        ),
        Target(
            "cortex-m4",
            "Cortex-M4F on QEMU mps2-an386 (hard float)",
            **_M,
            cpu_flags=("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
            machine="mps2-an386",
            cpu="Cortex-M4",
            flash="4M",
            ram="4M",
            clock_hz=25_000_000,
        ),
        Target(
            "cortex-m3",
            "Cortex-M3 on QEMU mps2-an385",
            **_M,
            cpu_flags=("-mcpu=cortex-m3", "-mthumb"),
            machine="mps2-an385",
            cpu="Cortex-M3",
            flash="4M",
            ram="4M",
            clock_hz=25_000_000,
        ),
        Target(
            "cortex-m0",
            "Cortex-M0 on QEMU microbit (BBC micro:bit v1: 256 KB flash, 16 KB RAM)",
            **_M,
            cpu_flags=("-mcpu=cortex-m0", "-mthumb"),
            machine="microbit",
            cpu="Cortex-M0 (nRF51822)",
            flash="256K",
            ram="16K",
            clock_hz=16_000_000,
        ),
    )
}


def target(name: str | Target) -> Target:
    if isinstance(name, Target):
        return name
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; expected one of {', '.join(TARGETS)}")
    return TARGETS[name]


def _has_newlib(cc: str) -> bool:
    try:
        found = subprocess.run([cc, "-print-file-name=nano.specs"], capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return Path(found.stdout.strip()).is_file()


class BuildError(RuntimeError):
    """A compiler or emulator that failed: the command and its output."""


# ---------------------------------------------------------------------------------------------- commands


def sources(t: Target, name: str) -> list[str]:
    """The files (relative to the export folder) that make the target's program."""
    if t.bare_metal:
        return ["cortex_m/harness.c", "cortex_m/startup.c", f"{name}.c", f"{name}_selftest.c"]
    return ["main.c", f"{name}.c", f"{name}_selftest.c"]


def compile_command(t: Target, name: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The one command that builds the target's program in the export folder (the Makefile states the same)."""
    board = (f"-DBNN_CLOCK_HZ={t.clock_hz}", "-Icortex_m") if t.bare_metal else ()
    script = (f"-Tcortex_m/{t.name}.ld",) if t.bare_metal else ()
    return [t.cc, *t.cflags, *extra, *board, "-I.", "-o", t.program, *sources(t, name), *t.link_flags, *script, "-lm"]


def object_command(t: Target, name: str, extra: tuple[str, ...] = ()) -> list[str]:
    """Compiles the model alone (its own text, rodata, data and bss)."""
    return [t.cc, *t.cflags, *extra, "-c", "-o", f"{name}-{t.name}.o", f"{name}.c"]


def run_command(t: Target, name: str) -> list[str]:
    if t.bare_metal:
        return [
            "qemu-system-arm",
            "-M",
            t.machine,
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-icount",
            "shift=0",
            "-kernel",
            t.program,
        ]
    return [*t.emulator, f"./{t.program}", "--batch", "images.bin"]


def makefile(name: str) -> str:
    """The export folder's Makefile: one rule per target, from TARGETS."""
    rules = [
        f"# Makefile for {name}, generated by bnn-workbench. `make` builds ./classify for this machine;",
        "# `make TARGET` one of: " + " ".join(TARGETS) + "; `make run-TARGET` runs images.bin",
        "# (inputs back to back) on it: under QEMU for aarch64 and the Cortex-M boards (results.txt).",
        "",
        ".PHONY: all clean " + " ".join(TARGETS) + " " + " ".join(f"run-{t}" for t in TARGETS),
        "all: host",
        "",
    ]
    for t in TARGETS.values():
        program_deps = " ".join(sources(t, name)) + f" {name}.h" + (f" cortex_m/{t.name}.ld" if t.bare_metal else "")
        rules += [f"{t.name}: {t.program}", f"{t.program}: {program_deps}", "\t" + " ".join(compile_command(t, name))]
        run = " ".join(run_command(t, name))
        if t.bare_metal:
            rules += [f"run-{t.name}: {t.program} images.bin", f"\t{run} && cat results.txt", ""]
        else:
            rules += [f"run-{t.name}: {t.program} images.bin", f"\t{run}", ""]
    rules += ["clean:", "\trm -f classify classify-* *.elf *.o results.txt", ""]
    return "\n".join(rules)


# ---------------------------------------------------------------------------------------------- build and run


def _run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as error:
        raise BuildError(f"{' '.join(command)}: no result after {timeout:.0f} s") from error
    if done.returncode:
        raise BuildError(f"{' '.join(command)} (in {cwd}) exited {done.returncode}:\n{done.stderr}{done.stdout}")
    return done


def build(
    directory: str | Path, name: str, which: str | Target, extra: tuple[str, ...] = (), timeout: float = 600
) -> Path:
    """Builds the target's program in the export folder; returns its path (BuildError with the compiler's output)."""
    t, directory = target(which), Path(directory)
    _run(compile_command(t, name, extra), directory, timeout)
    return directory / t.program


@dataclass
class RunResult:
    """One run of a program on inputs: per input the class, the scores and the logits (float32)."""

    classes: np.ndarray
    scores: np.ndarray
    logits: np.ndarray
    selftest: str = ""
    stats: dict = field(default_factory=dict)


def parse_results(text: str, classes: int, dots: bool) -> RunResult:
    rows, selftest, stats = [], "", {}
    for line in text.splitlines():
        if line.startswith("#stats"):
            stats = {key: int(value) for key, value in (item.split("=") for item in line.split()[1:])}
        elif " selftest: " in line:
            selftest = line
        elif line.strip():
            rows.append(line.split())
    if any(len(row) != 1 + 2 * classes for row in rows):
        raise BuildError(f"malformed result lines (expected 1 + 2 * {classes} fields): {rows[:1]}")
    table = np.array(rows, dtype=object).reshape(len(rows), 1 + 2 * classes)

    def floats(columns):
        return (
            np.array([[int(v, 16) for v in row] for row in columns], dtype=np.uint32)
            .reshape(-1, classes)
            .view(np.float32)
        )

    scores = (
        np.array(table[:, 1 : 1 + classes].tolist(), dtype=np.int64).astype(np.int32)
        if dots
        else floats(table[:, 1 : 1 + classes])
    )
    return RunResult(
        np.array(table[:, 0].tolist(), dtype=np.int64), scores, floats(table[:, 1 + classes :]), selftest, stats
    )


def run(
    directory: str | Path,
    name: str,
    which: str | Target,
    inputs: np.ndarray,
    classes: int,
    dots: bool,
    timeout: float = 600,
) -> RunResult:
    """Runs the built program on inputs (N, ...) uint8, all in one process (one emulator start)."""
    t, directory = target(which), Path(directory)
    (directory / "images.bin").write_bytes(np.ascontiguousarray(inputs, dtype=np.uint8).tobytes())
    results = directory / "results.txt"
    if t.bare_metal:
        results.unlink(missing_ok=True)
        _run(run_command(t, name), directory, timeout)
        text = results.read_text()
    else:
        text = _run(run_command(t, name), directory, timeout).stdout
    result = parse_results(text, classes, dots)
    if len(result.classes) != len(inputs):
        raise BuildError(f"{t.name}: {len(result.classes)} result lines for {len(inputs)} inputs")
    return result


# ---------------------------------------------------------------------------------------------- footprint and cost


@dataclass
class Footprint:
    """Measured on one target: the model's own sections, the whole program's (bare metal), the stack of one
    predict() and the emulated instructions per inference (bare metal, QEMU -icount shift=0)."""

    target: str
    model: dict  # text, rodata, data, bss, flash, ram of <name>.c alone
    program: dict | None = None  # the same of the linked ELF (harness, startup, libc and libgcc parts included)
    stack_bytes: int | None = None
    instructions: dict | None = None  # mean, min, max per inference, images

    @property
    def flash_bytes(self) -> int:
        return self.model["text"] + self.model["rodata"] + self.model["data"]

    @property
    def ram_bytes(self) -> int | None:
        return None if self.stack_bytes is None else self.model["data"] + self.model["bss"] + self.stack_bytes

    def lines(self) -> list[str]:
        m = self.model
        out = [
            f"target {self.target} ({TARGETS[self.target].description})",
            f"  model flash {self.flash_bytes:,} B (text {m['text']:,} + rodata {m['rodata']:,} + data "
            f"{m['data']:,}); RAM data {m['data']:,} + bss {m['bss']:,} (the arena)"
            + (f" + stack peak {self.stack_bytes:,} = {self.ram_bytes:,} B" if self.stack_bytes is not None else ""),
        ]
        if self.program:
            p = self.program
            out.append(
                f"  whole program (harness, startup, libc/libgcc parts): flash {p['flash']:,} B, "
                f"RAM {p['ram']:,} B + stack"
            )
        if self.instructions:
            i = self.instructions
            out.append(
                f"  {i['mean']:,.0f} emulated instructions per inference (QEMU -icount, not silicon cycles; "
                f"min {i['min']:,.0f}, max {i['max']:,.0f} over {i['images']} inputs)"
            )
        return out


def model_sizes(directory: str | Path, name: str, which: str | Target) -> dict:
    t, directory = target(which), Path(directory)
    _run(object_command(t, name), directory, 600)
    return elf.sizes(directory / f"{name}-{t.name}.o")


def footprint(
    directory: str | Path, name: str, which: str | Target, result: RunResult | None = None, model: dict | None = None
) -> Footprint:
    """Sizes from the ELF files of a built target, and the run's stack and instruction counts (bare metal).
    ``model``: the model's own sections when they are not those of <name>.c alone (the int8 baseline's)."""
    t, directory = target(which), Path(directory)
    report = Footprint(t.name, model if model is not None else model_sizes(directory, name, t))
    if t.bare_metal:
        report.program = elf.sizes(directory / t.program)
        if result is not None and result.stats:
            s = result.stats
            per_tick = 1e9 / t.clock_hz
            report.stack_bytes = s["stack"]
            report.instructions = dict(
                mean=s["ticks_total"] * per_tick / max(s["images"], 1),
                min=s["ticks_min"] * per_tick,
                max=s["ticks_max"] * per_tick,
                images=s["images"],
            )
    return report
