"""One table, one run: a binary network's C export against the int8 CMSIS-NN build of its float twin on the same
emulated microcontroller and the same test images (``bnn-workbench bench MODEL --target cortex-m4`` and the Export
page print this table).

Accuracy is on the whole test split: the engine's for the binary network (its C is bit-exact with it), the NumPy
reference's for the int8 twin (its C is bit-exact with that); both C programs are run on the board for ``images``
inputs and checked against those. Flash, RAM and instructions per inference are measured on the board. Energy is an
estimate: instructions x the datasheet energy per cycle of the devices the target stands for (core/devices.py).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.core.devices import DEVICES, energy_per_inference_j
from workbench.deploy.c_export import cmsis_int8, export_c
from workbench.deploy.c_export.measure import measure
from workbench.deploy.c_export.targets import Footprint
from workbench.deploy.engine import Engine, raw_inputs
from workbench.deploy.packed import PackedModel
from workbench.train import int8_twin

# The targets for the binary network against its int8 twin (a ratio BNN / int8 at most this)
TARGET_RATIOS = {"weight flash": 1 / 7, "RAM": 1 / 3, "instructions": 1 / 3}


@dataclass
class Side:
    """One of the two programs, as measured."""

    label: str
    accuracy: float
    weight_bytes: int
    footprint: Footprint
    checked: int  # board inputs equal to their reference (the engine, or the int8 NumPy reference)
    images: int

    @property
    def flash_bytes(self) -> int:
        return self.footprint.flash_bytes

    @property
    def ram_bytes(self) -> int:
        return self.footprint.ram_bytes

    @property
    def instructions(self) -> float:
        return self.footprint.instructions["mean"]


@dataclass
class DeviceBench:
    model: str
    target: str
    binary: Side
    int8: Side
    test_images: int
    notes: list[str] = field(default_factory=list)

    def ratios(self) -> dict[str, float]:
        """BNN / int8 for each measure (smaller is better for the BNN)."""
        b, q = self.binary, self.int8
        return {
            "weight flash": b.weight_bytes / q.weight_bytes,
            "flash": b.flash_bytes / q.flash_bytes,
            "RAM": b.ram_bytes / q.ram_bytes,
            "instructions": b.instructions / q.instructions,
        }

    def energy(self) -> list[dict]:
        """Estimated energy per inference on the devices the emulated target stands for (datasheet run current)."""
        rows = []
        for d in DEVICES.values():
            if d.c_target != self.target:
                continue
            rows.append(
                dict(
                    device=d.name,
                    nj_per_cycle=d.energy_per_cycle_j * 1e9,
                    binary_uj=energy_per_inference_j(d, self.binary.instructions) * 1e6,
                    int8_uj=energy_per_inference_j(d, self.int8.instructions) * 1e6,
                    source=d.source,
                )
            )
        return rows

    def rows(self) -> list[dict]:
        """The table as rows (the Export page shows them as a dataframe)."""
        b, q, r = self.binary, self.int8, self.ratios()

        def verdict(key):
            limit = TARGET_RATIOS.get(key)
            if limit is None:
                return ""
            return f"{'met' if r[key] <= limit else 'short'} (target <= 1/{1 / limit:.0f})"

        measured = [
            ("weight flash (B)", b.weight_bytes, q.weight_bytes, "weight flash"),
            ("model flash, code included (B)", b.flash_bytes, q.flash_bytes, "flash"),
            ("RAM: data + bss + stack peak (B)", b.ram_bytes, q.ram_bytes, "RAM"),
            ("emulated instructions / inference", b.instructions, q.instructions, "instructions"),
        ]
        rows = [dict(measure="accuracy (test set)", binary=f"{b.accuracy:.2%}", int8=f"{q.accuracy:.2%}", ratio="")]
        rows += [
            dict(measure=what, binary=f"{bv:,.0f}", int8=f"{qv:,.0f}", ratio=f"1/{1 / r[key]:.2f}", target=verdict(key))
            for what, bv, qv, key in measured
        ]
        rows[0]["target"] = ""
        return rows

    def to_text(self) -> str:
        rows = self.rows()
        columns = ["measure", "binary", "int8", "ratio", "target"]
        titles = dict(measure="", binary="BNN (XNOR C)", int8="int8 (CMSIS-NN)", ratio="BNN / int8", target="")
        widths = {c: max(len(titles[c]), *(len(row[c]) for row in rows)) for c in columns}
        lines = [
            f"{self.model} on {self.target}: the binary network's C against the int8 post-training quantized float "
            f"twin on CMSIS-NN; accuracy on {self.test_images} test images, board runs checked on "
            f"{self.binary.images} (binary: {self.binary.checked} bit-exact with the engine; int8: {self.int8.checked} "
            "equal to its NumPy reference)",
            "  ".join(titles[c].ljust(widths[c]) if c == "measure" else titles[c].rjust(widths[c]) for c in columns),
        ]
        for row in rows:
            lines.append(
                "  ".join(
                    row[c].ljust(widths[c]) if c in ("measure", "target") else row[c].rjust(widths[c]) for c in columns
                )
            )
        energy = self.energy()
        if energy:
            lines.append(
                "energy per inference, an ESTIMATE: instructions x 1 cycle each (a lower bound: loads and branches "
                "take 2+) x the datasheet's run-mode energy per cycle (typical current x supply voltage / clock, code "
                "from flash, peripherals off; no board, sleep or idle power):"
            )
            for e in energy:
                lines.append(
                    f"  {e['device']}: {e['nj_per_cycle']:.2f} nJ/cycle ({e['source']}): BNN {e['binary_uj']:,.0f} uJ, "
                    f"int8 {e['int8_uj']:,.0f} uJ"
                )
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def bench(
    packed: PackedModel,
    dataset,
    twin=None,
    training: dict | None = None,
    target: str = "cortex-m4",
    cmsis: str | Path | None = None,
    images: int = 20,
    folder: str | Path | None = None,
    log=print,
) -> DeviceBench:
    """Build, run and measure the binary model and the int8 twin of its float twin on one emulated board.

    ``twin``: a trained float twin (torch model); without one it is trained here on ``dataset`` with ``training``.
    """
    cmsis = cmsis_int8.cmsis_nn_dir(cmsis)  # fail early, saying how to get it
    spec = packed.meta["network_spec"]
    if twin is None:
        if not training:
            raise ValueError("the device bench needs a trained float twin or a training spec to train one")
        log(f"training the float twin of {spec['name']} ({training.get('epochs')} epochs)")
        twin = int8_twin.train_twin(spec, training, dataset)
    u_train = raw_inputs(dataset.x_train, dataset.preprocessing)
    u_test = raw_inputs(dataset.x_test, dataset.preprocessing)
    if u_test.dtype != np.uint8:
        raise cmsis_int8.Int8Error("the device bench needs uint8 inputs (images); this data is float features")
    program = int8_twin.quantize(twin, u_train, dataset.preprocessing, packed.class_names)
    board_inputs = u_test[:images]
    with tempfile.TemporaryDirectory(prefix="bnn-device-bench-") as scratch:
        root = Path(folder or scratch)
        library = export_c(packed, root / "binary", selftest_input=u_test[0])
        log(f"building and running {library.name} on {target}")
        measured = measure(packed, library, root / "binary", target, board_inputs)
        log(f"building and running the int8 twin with CMSIS-NN ({cmsis}) on {target}")
        int8_library = cmsis_int8.generate_int8(program, selftest_input=u_test[0])
        int8_run = cmsis_int8.build_and_measure(program, int8_library, root / "int8", target, board_inputs, cmsis)
    binary_accuracy = float((Engine(packed).predict(u_test) == dataset.y_test).mean())
    int8_accuracy = float((cmsis_int8.reference(program, u_test).argmax(axis=1) == dataset.y_test).mean())
    agreement = measured.agreement
    return DeviceBench(
        model=spec["name"],
        target=target,
        binary=Side(
            "binary", binary_accuracy, library.weight_bytes, measured.footprint, agreement.scores_equal, images
        ),
        int8=Side("int8", int8_accuracy, program.weight_bytes, int8_run.footprint, int8_run.matches_reference, images),
        test_images=len(u_test),
        notes=program.notes,
    )
