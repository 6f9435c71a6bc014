"""The Streamlit twin with the UI benchmark's clock engine (``bench/ui_streamlit.py`` runs it)."""

from __future__ import annotations

import streamlit as st
from fastapi import FastAPI

from backend.app import create_app
from backend.config import Settings
from bench.ui_latency import ClockEngine
from ui.streamlit_support.config import config_from_env
from ui.streamlit_support.page import run_page

RATE = 20.0


def _api(settings: Settings) -> FastAPI:
    return create_app(settings, extra_engines=[ClockEngine((RATE,))])


if "model" not in st.session_state:
    st.session_state["model"] = f"clock-{RATE:g}"
run_page(config_from_env(), api_factory=_api)
