"""The app's pages, listed once: app.py builds the navigation from it and Home draws the flow from it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    script: str
    title: str
    icon: str
    flow: str = ""  # what this step of the workflow does, for Home; empty for pages outside the flow


# The first entry is the default page; the pages with a ``flow`` text are the workflow's steps, in order.
PAGES = (
    Page("pages/home.py", "Home", ":material/home:"),
    Page("pages/playground.py", "Playground", ":material/toys:"),
    Page("pages/compare.py", "Binary vs float", ":material/compare:"),
    Page(
        "pages/design.py",
        "Design",
        ":material/schema:",
        "lay out the layers and their quantizers; see parameters, memory and MACs.",
    ),
    Page(
        "pages/train.py",
        "Train",
        ":material/model_training:",
        "pick data and training tricks; watch loss, accuracy and weight flips live.",
    ),
    Page(
        "pages/inspect.py",
        "Inspect",
        ":material/query_stats:",
        "latent weights, saturation, flips, one neuron's bits, confusions.",
    ),
    Page(
        "pages/deploy.py",
        "Deploy",
        ":material/rocket_launch:",
        "pack to bits and run the XNOR-popcount engine; memory and speed vs float.",
    ),
    Page("pages/export.py", "Export", ":material/download:", "download the .bnn file and the code that loads it."),
    Page("pages/runs.py", "Runs", ":material/table_rows:"),
)

FLOW = tuple(page for page in PAGES if page.flow)
