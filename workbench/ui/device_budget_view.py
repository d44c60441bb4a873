"""Budget bars: a model's flash and RAM against a real device (workbench.core.devices), predicted on Design as the
network is edited, predicted beside measured on Export."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from workbench.core.devices import DEVICES, Device, fits
from workbench.deploy.c_export import CExportError
from workbench.deploy.c_export.budget import Prediction, predict
from workbench.ui.widgets import show_error


def pick_device(key: str, default: str = "stm32f401") -> Device:
    keys = list(DEVICES)
    chosen = st.selectbox(
        "device",
        keys,
        index=keys.index(default),
        format_func=lambda k: (
            f"{DEVICES[k].name}: {DEVICES[k].core}, {_size(DEVICES[k].flash_bytes)} flash, "
            f"{_size(DEVICES[k].ram_bytes)} RAM"
        ),
        key=key,
    )
    return DEVICES[chosen]


@st.cache_data(max_entries=32, show_spinner=False)
def _predicted(spec_json: str, target: str | None) -> Prediction:
    return predict(json.loads(spec_json), target)


def predicted(spec: dict, d: Device) -> Prediction | None:
    """The predicted export of a valid spec on the device's target, or None after showing why it cannot export."""
    try:
        return _predicted(json.dumps(spec, sort_keys=True), d.c_target)
    except (CExportError, ValueError) as error:
        show_error(error, "No C export to size: ")
        return None


def show_budget(prediction: Prediction, d: Device) -> None:
    """One bar per resource: share of the device used, and whether it fits and by how much."""
    for fit in fits(d, prediction.flash_bytes, prediction.ram_bytes):
        st.progress(min(fit.share, 1.0), text=fit.line())
        if not fit.fits:
            st.warning(f"{fit.what} does not fit {d.name}: over by {_size(-fit.left)}.", icon=":material/warning:")
    proxy = "" if d.c_target else f" ({d.core}: the Cortex-M4's code size stands in)"
    low, high = prediction.flash_range
    st.caption(
        f"Predicted for the C export{proxy}: flash = weights {prediction.weight_bytes:,} B (exact, from the "
        f"exporter) + runtime ~{prediction.runtime_bytes:,} B (measured {low - prediction.weight_bytes:,}-"
        f"{high - prediction.weight_bytes:,} B across networks); RAM = arena {prediction.arena_bytes:,} B (exact) + "
        f"stack ~{prediction.stack_bytes:,} B. The model alone: your program's own code, libc and buffers come on "
        "top (a minimal one: about 5-9 KB of flash, 1.3 KB of RAM)."
    )


def comparison_table(prediction: Prediction, measured) -> pd.DataFrame:
    """Predicted against measured (a ``targets.Footprint``) for the model's flash and RAM."""
    rows = [
        ("model flash", prediction.flash_bytes, measured.flash_bytes),
        ("weights and constants (rodata)", prediction.weight_bytes, measured.model["rodata"]),
        ("code (text)", None, measured.model["text"]),
        ("RAM: arena (bss)", prediction.arena_bytes, measured.model["bss"]),
        ("RAM: stack peak", prediction.stack_bytes, measured.stack_bytes),
        ("model RAM", prediction.ram_bytes, measured.ram_bytes),
    ]
    return pd.DataFrame(
        [
            {
                "": what,
                "predicted (B)": "" if p is None else f"{p:,}",
                "measured (B)": "" if m is None else f"{m:,}",
                "difference": "" if p is None or not m else f"{p / m - 1:+.1%}",
            }
            for what, p, m in rows
        ]
    )


def _size(nbytes: int) -> str:
    if nbytes >= 1024 * 1024:
        return f"{nbytes / 1024 / 1024:,.1f} MB"
    return f"{nbytes / 1024:,.1f} KB" if nbytes >= 1024 else f"{nbytes} B"
