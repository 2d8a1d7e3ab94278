"""One file per app page; each defines ``render()`` and runs it when Streamlit executes the file."""
