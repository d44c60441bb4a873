"""BNN Workbench app: the entry script that `bnn-workbench app` / `make app` starts.

It only declares the pages; each page is a thin script over the library (workbench/).
Adding a page is one entry in PAGES.
"""
import streamlit as st

st.set_page_config(page_title="BNN Workbench", page_icon=":material/memory:", layout="wide")

# (script, title, icon); the first entry is the default page.
PAGES = [
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/design.py", "Design", ":material/schema:"),
    ("pages/train.py", "Train", ":material/model_training:"),
    ("pages/inspect.py", "Inspect", ":material/query_stats:"),
    ("pages/deploy.py", "Deploy", ":material/rocket_launch:"),
    ("pages/export.py", "Export", ":material/download:"),
    ("pages/runs.py", "Runs", ":material/table_rows:"),
]

navigation = st.navigation(
    [st.Page(script, title=title, icon=icon, default=index == 0) for index, (script, title, icon) in enumerate(PAGES)]
)
navigation.run()
