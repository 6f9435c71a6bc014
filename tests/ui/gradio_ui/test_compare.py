"""ui/gradio_ui/compare.py: the presets fill both panes' settings."""

from __future__ import annotations

from ui.gradio_ui.compare import (
    NON_STREAMING,
    PRESETS,
    STREAMING,
    pane_label,
    preset_values,
)

MODELS = ["gemma-3-270m", "ssechat-simulated"]


def test_the_default_compares_streaming_with_non_streaming_on_the_same_model() -> None:
    a, b = preset_values(PRESETS[0], MODELS, "gemma-3-270m")
    assert (a[0], a[1]) == ("gemma-3-270m", STREAMING)
    assert (b[0], b[1]) == ("gemma-3-270m", NON_STREAMING)
    assert a[2:] == b[2:]  # same dialect and temperature: only the streaming differs


def test_each_preset_changes_one_thing() -> None:
    for preset, differs in (
        ("two models", 0),
        ("two temperatures", 3),
        ("two dialects", 2),
    ):
        a, b = preset_values(preset, MODELS, "gemma-3-270m")
        assert [i for i in range(4) if a[i] != b[i]] == [differs], preset
    a, b = preset_values("two dialects", MODELS, None)
    assert (a[2], b[2]) == ("chat", "responses")
    # One model only: "two models" falls back to the same model rather than failing.
    a, b = preset_values("two models", ["only"], "only")
    assert a[0] == b[0] == "only"


def test_pane_labels_say_model_mode_and_dialect() -> None:
    assert pane_label("A", "m", STREAMING, "chat") == "A: stream · chat · m"
    assert pane_label("B", None, NON_STREAMING, "messages") == ("B: no stream · messages · default")
