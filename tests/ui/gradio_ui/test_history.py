"""ui/gradio_ui/history.py: saved chats, newest first, bounded."""

from __future__ import annotations

from typing import Any

from ui.gradio_ui.history import MAX_SAVED, chat_title, chat_titles, open_chat, save_chat


def chat(question: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": "answer"},
    ]


def test_a_new_chat_goes_first_and_keeps_its_place_when_it_grows() -> None:
    index, saved = save_chat(chat("first question"), None, [])
    assert index == 0
    index, saved = save_chat(chat("second"), None, saved)
    assert index == 0
    assert [row[0] for row in chat_titles(saved)] == ["second", "first question"]
    longer = [*chat("second"), *chat("more")]
    index, saved = save_chat(longer, 0, saved)
    assert index == 0
    assert len(saved[0]["messages"]) == 4
    assert open_chat(saved, 1) == (1, chat("first question"))
    assert open_chat(saved, 7) == (None, [])


def test_an_emptied_chat_is_dropped_and_an_unsaved_empty_one_is_not_stored() -> None:
    _, saved = save_chat(chat("q"), None, [])
    assert save_chat([], 0, saved) == (None, [])
    assert save_chat([], None, saved) == (None, saved)


def test_titles_are_one_short_line_and_the_list_is_bounded() -> None:
    title = chat_title(chat("a  long\nquestion " + "x" * 100))
    assert "\n" not in title
    assert title.endswith("…")
    assert len(title) <= 48
    assert chat_title([{"role": "assistant", "content": "hi"}]) == "(empty chat)"
    saved: list[dict[str, Any]] = []
    for i in range(MAX_SAVED + 5):
        _, saved = save_chat(chat(f"q{i}"), None, saved)
    assert len(saved) == MAX_SAVED
    assert saved[0]["title"] == f"q{MAX_SAVED + 4}"
