"""What each endpoint's ``parameters`` may hold, and the checks a request gets at the edge.

One table names every parameter of every endpoint with the function that checks its value (the
same functions the executors apply), so a request with a misspelt or bad parameter is refused
as a whole, with a message naming the parameter and the known ones, before any work is done.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from functools import partial

from audiosearch.errors import InvalidInputError
from audiosearch.index import check_clip_filter, check_min_score, check_offset
from audiosearch.rank import check_flag, check_limit, check_strategy

__all__ = [
    "ENDPOINT_PARAMETERS", "MAX_CLIP_ID", "check_clip_id", "check_clip_ids", "check_parameters",
]  # fmt: skip

#: The largest clip id a request may name: Jina's protobuf carries a document's whole numbers
#: as 32-bit integers, and the index allocates ids upwards from 1, far below this.
MAX_CLIP_ID = 2**31 - 1

Check = Callable[[object], object]

SEARCH_PARAMETERS: dict[str, Check] = {
    "limit": check_limit,
    "min_score": check_min_score,
    "min_duration": lambda value: check_clip_filter(min_duration=value),
    "max_duration": lambda value: check_clip_filter(max_duration=value),
    "path_glob": lambda value: check_clip_filter(path_glob=value),
    "strategy": check_strategy,
    "query_expansion": partial(check_flag, "query_expansion"),
    "duplicates": partial(check_flag, "duplicates"),
    "like": lambda value: check_clip_ids("like", value),
    "unlike": lambda value: check_clip_ids("unlike", value),
}
#: Each flow endpoint's parameters; an endpoint with none takes an empty ``parameters``.
ENDPOINT_PARAMETERS: dict[str, dict[str, Check]] = {
    "/search": SEARCH_PARAMETERS,
    "/list": {"offset": check_offset, "limit": check_limit},
    "/index": {},
    "/clips": {},
    "/delete": {},
    "/stats": {},
}


def check_parameters(endpoint: str, parameters: Mapping[str, object]) -> None:
    """Raise :class:`InvalidInputError` for a parameter ``endpoint`` does not take or a bad value.

    Keys that start with ``__`` are Jina's own and pass.
    """
    known = ENDPOINT_PARAMETERS.get(endpoint)
    if known is None:
        return
    for name, value in parameters.items():
        if name.startswith("__"):
            continue
        if name not in known:
            raise InvalidInputError(unknown_parameter(endpoint, name, known))
        known[name](value)
    if endpoint == "/search":  # min_duration > max_duration is wrong only as a pair
        check_clip_filter(parameters.get("min_duration"), parameters.get("max_duration"))


def unknown_parameter(endpoint: str, name: str, known: Mapping[str, object]) -> str:
    """The message for a parameter ``endpoint`` does not take, with the likely one meant."""
    if not known:
        return f"{name}: {endpoint} takes no parameters; leave them out"
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{name}: not a parameter of {endpoint}; {hint}it takes {', '.join(known)}"


def check_clip_ids(name: str, value: object) -> list[int]:
    """A list of clip ids (``like``, ``unlike``), or :class:`InvalidInputError` saying why."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInputError(
            f"{name}={value!r}: expected a list of clip ids, e.g. {name}=[7, 12]"
        )
    ids = []
    for item in value:
        try:
            ids.append(check_clip_id(item))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{name}: {exc}") from None
    return ids


def check_clip_id(clip_id: object) -> int:
    """``clip_id`` as an int in 0..MAX_CLIP_ID, or :class:`InvalidInputError` saying why."""
    if isinstance(clip_id, float) and clip_id.is_integer():
        clip_id = int(clip_id)
    if not isinstance(clip_id, int) or isinstance(clip_id, bool) or not 0 <= clip_id <= MAX_CLIP_ID:
        raise InvalidInputError(
            f"clip_id={clip_id!r}: expected a whole number from 0 to {MAX_CLIP_ID:,}, as /list "
            "shows them"
        )
    return clip_id
