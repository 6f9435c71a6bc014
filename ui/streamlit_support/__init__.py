"""The Streamlit twin's support code: a sync facade over ``ui.client``, the embedded backend
thread, configuration from the environment, and the page itself (``ui/streamlit_app.py``)."""
