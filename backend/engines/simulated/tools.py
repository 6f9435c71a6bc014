"""When the simulated engine calls a tool, and with which arguments.

The rule, deterministic and documented (docs/DESIGN.md):

- ``tool_choice: "none"``, or no tools: no call.
- ``tool_choice`` naming a tool: that tool.
- Otherwise only a conversation whose last message is the user's asks for a
  call (after a tool result the model answers in text, unless forced). The
  tools it "applies" are those the user's message names (the tool's name as
  whole words, any case, ``_``, ``-`` and spaces alike: ``get_weather``,
  ``get weather`` and ``Get-Weather`` all name ``get_weather``); a
  message that asks to "use"/"call"/"invoke" a tool without naming one
  applies the first tool.
- ``"required"``: the tools that apply, or the first tool if none does;
  ``"auto"`` (or unset): the tools that apply, possibly none.
- Several tools apply: one call each, in the order the tools were defined,
  unless ``parallel_tool_calls`` is false (then the first only).

Arguments are a JSON value valid against the tool's ``parameters``
(``values.value_for``), written compactly and streamed in word-sized
pieces; the call id is ``call_`` + 24 letters and digits. Both come from a
generator seeded with the request (messages, seed) and the call's position,
so the same request always gets the same calls.
"""

from __future__ import annotations

import json
import random
import re
import string
from dataclasses import dataclass
from typing import Any

from backend.engines.base import GenerationRequest, ToolSpec
from backend.engines.simulated.values import Unsatisfiable, unsatisfiable, value_for
from backend.engines.simulated.words import request_seed, text_pieces

_ASKS_FOR_A_TOOL = re.compile(r"\b(?:use|call|invoke)\b[^.?!\n]{0,40}?\btools?\b", re.IGNORECASE)
_ID_CHARACTERS = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class PlannedCall:
    index: int
    id: str
    name: str
    arguments: str

    @property
    def pieces(self) -> list[str]:
        return text_pieces(self.arguments)


class PlanError(ValueError):
    """A part of the answer the engine cannot write; ``param`` names the field."""

    def __init__(self, param: str, why: str) -> None:
        super().__init__(why)
        self.param = param
        self.why = why


def _words(text: str) -> str:
    return re.sub(r"[_\-\s]+", " ", text).lower()


def _named(tool: ToolSpec, text: str) -> bool:
    """The message names the tool: its name as whole words, ``_``, ``-`` and spaces alike."""
    return re.search(rf"(?<!\w){re.escape(_words(tool.name))}(?!\w)", _words(text)) is not None


def chosen_tools(request: GenerationRequest) -> list[ToolSpec]:
    """The tools this request's answer calls, in order (empty: answer in text)."""
    choice = request.tool_choice
    if not request.tools or choice == "none":
        return []
    if choice not in (None, "auto", "required"):
        return [tool for tool in request.tools if tool.name == choice][:1]
    last = request.messages[-1] if request.messages else None
    applies: list[ToolSpec] = []
    if last is not None and last.role == "user":
        applies = [tool for tool in request.tools if _named(tool, last.content)]
        if not applies and _ASKS_FOR_A_TOOL.search(last.content):
            applies = [request.tools[0]]
    if not applies and choice == "required":
        applies = [request.tools[0]]
    if request.parallel_tool_calls is False:
        return applies[:1]
    return applies


def _arguments_schema(tool: ToolSpec) -> dict[str, Any]:
    # Arguments are an object: a schema that does not say so (or is empty) means one.
    return {"type": "object", **tool.parameters}


def _parameters_param(request: GenerationRequest, tool: ToolSpec) -> str:
    position = next(i for i, known in enumerate(request.tools) if known.name == tool.name)
    return f"tools[{position}].function.parameters"


def check_calls(request: GenerationRequest) -> None:
    """Raise ``PlanError`` if a tool this request calls has parameters no value
    satisfies (one trial draw per schema, kept: cheap on every later turn)."""
    for tool in chosen_tools(request):
        problem = unsatisfiable(_arguments_schema(tool))
        if problem is not None:
            raise PlanError(
                _parameters_param(request, tool),
                f"it cannot write arguments that satisfy this schema ({problem})",
            )


def planned_calls(request: GenerationRequest) -> list[PlannedCall]:
    """The calls with their ids and arguments. Raises ``PlanError`` for a tool whose
    parameters no value satisfies."""
    calls = []
    seed = request_seed(request)
    for index, tool in enumerate(chosen_tools(request)):
        rng = random.Random(f"{seed}/call/{index}/{tool.name}")
        call_id = "call_" + "".join(rng.choice(_ID_CHARACTERS) for _ in range(24))
        try:
            arguments = value_for(_arguments_schema(tool), rng)
        except Unsatisfiable as error:
            raise PlanError(
                _parameters_param(request, tool),
                f"it cannot write arguments that satisfy this schema ({error})",
            ) from None
        text = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
        calls.append(PlannedCall(index, call_id, tool.name, text))
    return calls
