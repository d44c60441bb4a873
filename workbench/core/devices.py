"""Real devices a model may have to fit: flash, RAM, clock, and the run-mode power behind an energy estimate.

Each figure is read from the device's datasheet (named in the comment beside it); the run-mode currents were
transcribed without a chance to re-check them against the datasheets (no network access), so the energy figures
built on them are approximate (docs/DEPLOY.md says so). The energy per cycle is
supply voltage x typical run-mode current / clock, code running from flash, peripherals off, as the datasheet
tables give it: an estimate of the core's work, not a measurement of a board (regulators, LEDs, radio and
sensors are not in it). ``c_target`` is the emulated Cortex-M target of ``workbench.deploy.c_export.targets`` whose
code size and instruction count stand in for the device (None where none runs its instruction set: the Cortex-M4's
code size then stands in for the size, and there is no instruction count).
"""

from __future__ import annotations

from dataclasses import dataclass

KB = 1024


@dataclass(frozen=True)
class Device:
    key: str
    name: str
    core: str
    flash_bytes: int
    ram_bytes: int
    clock_hz: int
    c_target: str | None  # the emulated target that stands in for code size and instructions
    supply_v: float | None = None  # the datasheet's condition for run_current_a
    run_current_a: float | None = None  # typical run-mode current at clock_hz, from flash, peripherals off
    source: str = ""  # the datasheet the figures come from

    @property
    def energy_per_cycle_j(self) -> float | None:
        """Joules per core cycle at clock_hz (None where the datasheet gives no run-mode current we can use)."""
        if self.supply_v is None or self.run_current_a is None:
            return None
        return self.supply_v * self.run_current_a / self.clock_hz

    @property
    def same_instructions(self) -> bool:
        """Whether an emulated target runs this device's instruction set (Thumb-2 counts mean nothing on Xtensa)."""
        return self.c_target is not None


DEVICES: dict[str, Device] = {
    d.key: d
    for d in (
        # Nordic nRF51822 Product Specification v3.4, "Electrical specification": 256 kB flash, 16 kB RAM
        # (the micro:bit v1's QFAA part); I_CPU,FLASH 4.4 mA typ. running from flash at 16 MHz, VDD 3.0 V.
        Device(
            "microbit-v1",
            "BBC micro:bit v1 (nRF51822)",
            "Cortex-M0",
            256 * KB,
            16 * KB,
            16_000_000,
            "cortex-m0",
            3.0,
            4.4e-3,
            "Nordic nRF51822 Product Specification v3.4",
        ),
        # ST DS5319 (STM32F103x8/xB datasheet) rev 17: 64 KB flash (x8), 20 KB SRAM; Table 15 "Typical current
        # consumption in Run mode, code with data processing running from Flash": 27 mA at 72 MHz, peripherals
        # disabled, VDD 3.3 V.
        Device(
            "stm32f103",
            "STM32F103C8 (Blue Pill)",
            "Cortex-M3",
            64 * KB,
            20 * KB,
            72_000_000,
            "cortex-m3",
            3.3,
            27e-3,
            "ST DS5319 STM32F103x8/xB datasheet",
        ),
        # ST DS10086 (STM32F401xD/xE datasheet): 512 KB flash, 96 KB SRAM, 84 MHz; "146 uA/MHz Run mode
        # (peripherals off)" on its front page, so 12.3 mA at 84 MHz, VDD 3.3 V.
        Device(
            "stm32f401",
            "STM32F401RE (Nucleo-F401RE)",
            "Cortex-M4F",
            512 * KB,
            96 * KB,
            84_000_000,
            "cortex-m4",
            3.3,
            146e-6 * 84,
            "ST DS10086 STM32F401xD/xE datasheet",
        ),
        # ST DS10916 (STM32F745xx/746xx datasheet): 1 MB flash, 320 KB RAM (incl. 64 KB DTCM), 216 MHz; Run mode
        # from flash, ART and cache on, peripherals disabled: about 100 mA typ. at 216 MHz, VDD 3.3 V (its table
        # "Typical and maximum current consumption in Run mode"). The M7 is not emulated: the M4's Thumb-2
        # instruction count stands in (the M7 issues two per cycle at best).
        Device(
            "stm32f746",
            "STM32F746NG (32F746G-DISCO)",
            "Cortex-M7",
            1024 * KB,
            320 * KB,
            216_000_000,
            "cortex-m4",
            3.3,
            100e-3,
            "ST DS10916 STM32F745xx/STM32F746xx datasheet",
        ),
        # Espressif ESP32 Series Datasheet v4.x: ESP32-WROOM-32 module with 4 MB SPI flash, 520 KB SRAM on chip
        # (about 320 KB of it free for data in ESP-IDF). Xtensa LX6: no emulated instruction count, so no energy.
        Device(
            "esp32",
            "ESP32-WROOM-32",
            "Xtensa LX6",
            4096 * KB,
            320 * KB,
            240_000_000,
            None,
            source="Espressif ESP32 Series Datasheet",
        ),
        # Raspberry Pi Zero 2 W product brief: RP3A0 (4x Cortex-A53 at 1 GHz), 512 MB LPDDR2; the program lives
        # on the SD card (flash here: what an application may reasonably map, 64 MB). Runs Linux: the aarch64
        # target (qemu-aarch64, no instruction count).
        Device(
            "pi-zero-2",
            "Raspberry Pi Zero 2 W class (Cortex-A53)",
            "Cortex-A53",
            64 * 1024 * KB,
            512 * 1024 * KB,
            1_000_000_000,
            None,
            source="Raspberry Pi Zero 2 W product brief",
        ),
    )
}


def device(key: str) -> Device:
    if key not in DEVICES:
        raise ValueError(f"unknown device {key!r}; expected one of {', '.join(DEVICES)}")
    return DEVICES[key]


@dataclass(frozen=True)
class Fit:
    """One resource against a device's budget: used, available, and what is left (negative: over by that)."""

    what: str
    used: int
    available: int

    @property
    def left(self) -> int:
        return self.available - self.used

    @property
    def fits(self) -> bool:
        return self.used <= self.available

    @property
    def share(self) -> float:
        return self.used / self.available if self.available else float("inf")

    def line(self) -> str:
        state = f"fits, {self.left:,} B left" if self.fits else f"does not fit: over by {-self.left:,} B"
        return f"{self.what}: {self.used:,} of {self.available:,} B ({self.share:.0%}), {state}"


def fits(d: Device, flash_bytes: int, ram_bytes: int) -> list[Fit]:
    """Flash and RAM of a model (or a program) against a device."""
    return [Fit("flash", int(flash_bytes), d.flash_bytes), Fit("RAM", int(ram_bytes), d.ram_bytes)]


def energy_per_inference_j(d: Device, instructions: float, cycles_per_instruction: float = 1.0) -> float | None:
    """An estimate: instructions x cycles per instruction x the datasheet's energy per cycle (None without it).

    One cycle per emulated instruction is a lower bound on Cortex-M3/M4 (a load takes 2, a taken branch 2-4,
    flash wait states add more at high clocks); the M7's dual issue can do better. Sleep and idle power between
    inferences are not in it.
    """
    per_cycle = d.energy_per_cycle_j
    if per_cycle is None or not d.same_instructions:
        return None
    return float(instructions) * cycles_per_instruction * per_cycle
