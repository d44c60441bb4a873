"""BNN Workbench app: the entry script that `bnn-workbench app` / `make app` starts.

It only declares the pages; each page is a thin script over the library (workbench/).
Adding a page is one entry in workbench/ui/pages.py.
"""

import streamlit as st

from workbench.runs.store import RunStore, RunStoreDamagedError
from workbench.ui.pages import PAGES

st.set_page_config(page_title="BNN Workbench", page_icon=":material/memory:", layout="wide")

navigation = st.navigation(
    [st.Page(page.script, title=page.title, icon=page.icon, default=index == 0) for index, page in enumerate(PAGES)]
)
try:
    RunStore().close()  # most pages read the store: say once, here, when it cannot be read
except RunStoreDamagedError as error:
    st.error(f"The run store cannot be read: {error}. `bnn-workbench runs check` tells more.", icon=":material/error:")
    st.stop()
navigation.run()
