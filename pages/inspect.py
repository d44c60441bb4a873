"""Inspect: what training did to a run's binary layers, epoch by epoch, and where the trained model errs.

Histograms come from the run store (written by the worker each epoch); a float run records none, so its
weight histograms are read from its checkpoints. The neuron view, the confusion matrix and the misclassified
examples load a checkpoint. The computing lives in workbench/ui/inspect_view.py.
"""

import streamlit as st

from workbench.runs.store import RunStore
from workbench.runs.trained import load_trained_model
from workbench.train.evaluation import evaluate_model
from workbench.ui import inspect_view as view
from workbench.ui.figures import (
    confusion_figure,
    heatmap_figure,
    histogram_figure,
    neuron_figure,
)
from workbench.ui.neuron import neuron_view
from workbench.ui.run_data import run_dataset
from workbench.ui.widgets import by_position, pick_run_or_stop, show_error, show_run_error, to_image

GALLERY_SIZE = 24

st.title("Inspect")
store = RunStore()


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint…")
def _model(runs_dir: str, run_id: str, which, stamp: float):
    """A run's model for one checkpoint file version (stamp: its mtime, so a rewritten 'best' reloads)."""
    return load_trained_model(run_id, RunStore(runs_dir), which)[0]


@st.cache_data(max_entries=4, show_spinner=False)
def _weight_histograms(runs_dir: str, run_id: str, which, stamp: float) -> dict:
    """A float run's weight histograms of one checkpoint file version (computed once, not on every rerun)."""
    return view.weight_histograms(_model(runs_dir, run_id, which, stamp))


@st.cache_resource(max_entries=4, show_spinner="Evaluating on the test split…")
def _evaluation(runs_dir: str, run_id: str, which, stamp: float, _dataset):
    """The checkpoint scored on the run's own test split (not hashed: a run's data and split never change)."""
    return evaluate_model(_model(runs_dir, run_id, which, stamp), _dataset, "test")


run_id = pick_run_or_stop(store, key="inspect_run")
record = store.get_run(run_id)
if record.status == "failed":
    show_run_error(record.error, prefix="This run failed: ")


def _checkpoint_model(which):
    """The model of one checkpoint, or the library's error in the page and the page stopped."""
    try:
        stamp = store.checkpoint_path(run_id, which).stat().st_mtime
        return _model(str(store.runs_dir), run_id, which, stamp), stamp
    except (FileNotFoundError, ValueError) as error:
        show_error(error)
        st.stop()


# ------------------------------------------------------------ histograms of one epoch and layer
epochs, recorded = view.shown_epochs(store, record)
if not epochs:
    st.info("This run has no finished epoch yet; its histograms appear after the first one.")
    st.stop()
epoch_column, layer_column = st.columns(2)
# opens on the exported checkpoint's epoch, so the figures here are those of the model Export packs
exported = epochs.index(record.best_epoch) if record.best_epoch in epochs else len(epochs) - 1
epoch = epoch_column.selectbox(
    "epoch",
    epochs,
    index=exported,
    format_func=lambda e: f"{e} (exported)" if e == record.best_epoch else str(e),
    key="inspect_epoch",
)
which = view.checkpoint_for(store, run_id, epoch)
if recorded:
    histograms = store.histograms(run_id, epoch)
else:
    st.caption(
        "A network without quantized layers records no binarization histograms: its weights are read "
        "from the checkpoints still kept."
    )
    histograms = _weight_histograms(str(store.runs_dir), run_id, which, _checkpoint_model(which)[1])
if not histograms:
    st.info(f"Epoch {epoch} recorded no histograms (the network has no dense or conv2d layers).")
    st.stop()
layer = layer_column.selectbox("layer", by_position(histograms), key="inspect_layer")
data = histograms[layer]

if recorded:
    plus = data.get("plus_share")
    shares = st.columns(3)
    shares[0].metric("weights at +1", f"{plus:.1%}" if plus is not None else "–")
    shares[1].metric("weights at −1", f"{1 - plus:.1%}" if plus is not None else "–")
    saturated = data.get("saturated_share")
    shares[2].metric(
        "saturated (|w| ≥ clip)",
        f"{saturated:.1%}" if saturated is not None else "–",
        help="latent weights at the clip bound get no straight-through gradient and cannot flip back",
    )
else:
    shares = st.columns(3)
    shares[0].metric("weights", f"{data['count']:,}")
    shares[1].metric("mean |w|", f"{data['mean_abs']:.4f}")
    shares[2].metric("standard deviation", f"{data['std']:.4f}")
left, right = st.columns(2)
latent = data["latent"]
left.plotly_chart(
    histogram_figure(
        latent["edges"],
        latent["counts"],
        f"{'Latent weights' if recorded else 'Weights'} of {layer}, epoch {epoch}",
        clip=data.get("clip"),
        xaxis="latent weight" if recorded else "weight",
    ),
    key="inspect_latent",
)
if data.get("preact"):
    right.plotly_chart(
        histogram_figure(
            data["preact"]["edges"],
            data["preact"]["counts"],
            f"Pre-sign activations entering {layer}",
            xaxis="activation",
        ),
        key="inspect_preact",
    )
elif recorded:
    right.info(f"{layer} has a real-valued input (no input quantizer), so there is no pre-sign histogram.")
else:
    right.info(f"{layer} is a float layer: no signs are taken, so there are no flips or pre-sign activations.")

# ------------------------------------------------------------ flips across layers and epochs
epoch_metrics = store.metrics(run_id, "epoch")
flips = view.flip_matrix(epoch_metrics)
if flips is not None:
    z, flip_layers = flips
    st.plotly_chart(
        heatmap_figure(
            z,
            epoch_metrics["epoch"],
            flip_layers,
            "Share of binarized weights that flipped sign, per layer and epoch",
            xaxis="epoch",
            yaxis="layer",
            text_format="%{z:.3f}",
            height=max(220, 50 * len(flip_layers) + 120),
        ),
        key="inspect_flips",
    )

# ------------------------------------------------------------ one neuron or filter
st.subheader("One neuron or filter")
model, stamp = _checkpoint_model(which)
st.caption(
    f"From the checkpoint of epoch {epoch}."
    if which == epoch
    else f"Epoch {epoch}'s checkpoint is no longer kept; showing the best checkpoint."
)
quantized = dict(model.quantized_layers())
weights = view.weight_layers(model)
if layer in weights:
    weight = weights[layer]
    index = int(
        st.number_input(
            f"output channel (0 – {weight.shape[0] - 1})",
            min_value=0,
            max_value=weight.shape[0] - 1,
            value=0,
            step=1,
            key="inspect_neuron",
        )
    )
    neuron = neuron_view(weight, index)
    st.plotly_chart(neuron_figure(neuron.picture, binarized=layer in quantized), key="inspect_neuron_figure")
    if layer in quantized:
        st.caption(
            f"{neuron.picture_note.capitalize()}. {neuron.count} weights: {neuron.count - neuron.negative} "
            f"at +1, {neuron.negative} at −1. Packed: bit j of word w is element 64·w + j, 1 where the sign "
            "is −1."
        )
        st.dataframe(
            {
                "covers": neuron.word_labels,
                "uint64 words (hex)": [" ".join(r) for r in neuron.hex_words()],
                "bytes in the file (little-endian)": neuron.hex_bytes(),
            },
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption(f"{neuron.picture_note.capitalize()}. {neuron.count} float weights.")
else:
    st.info(f"{layer} is not a dense or conv2d layer of the model.")

# ------------------------------------------------------------ test split: confusions and mistakes
st.subheader("Test split")
try:
    dataset = run_dataset(record)
    evaluation = _evaluation(str(store.runs_dir), run_id, which, stamp, dataset)
except (ValueError, FileNotFoundError) as error:
    show_error(error)
    st.stop()
scored_epoch = epoch if which == epoch else record.best_epoch
st.metric(f"test accuracy of epoch {scored_epoch}", f"{evaluation.accuracy:.2%}")
if scored_epoch != record.best_epoch and record.best_epoch is not None:
    st.caption(f"Export packs the checkpoint of epoch {record.best_epoch} ({record.best_checkpoint_label}).")
st.plotly_chart(confusion_figure(evaluation.confusion, evaluation.class_names), key="inspect_confusion")
wrong = evaluation.misclassified
st.markdown(f"**Misclassified: {len(wrong)} of {len(evaluation.labels)}** (most confident mistakes first)")
names = evaluation.class_names
shown = wrong[:GALLERY_SIZE]
if len(shown) and to_image(dataset.x_test[shown[0]], dataset.preprocessing) is not None:
    columns = st.columns(8)
    for position, sample in enumerate(shown):
        caption = f"{names[evaluation.predictions[sample]]}, true {names[evaluation.labels[sample]]}"
        columns[position % 8].image(to_image(dataset.x_test[sample], dataset.preprocessing), caption=caption, width=84)
elif len(shown):
    st.dataframe(
        {
            "index": shown,
            "true": [names[evaluation.labels[i]] for i in shown],
            "predicted": [names[evaluation.predictions[i]] for i in shown],
            "confidence": [float(evaluation.probabilities[i, evaluation.predictions[i]]) for i in shown],
            **{f"x{j}": dataset.x_test[shown, j] for j in range(min(dataset.x_test.shape[1], 8))},
        },
        hide_index=True,
    )
