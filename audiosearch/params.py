"""What each endpoint's ``parameters`` may hold: one pydantic model per endpoint.

Each field says once its type, its range, its default and what it does; the gateway's guard,
the executors, the upload form, the command line's options and the OpenAPI page all read them
from here. A value is checked by the core's own function for it, so a request with a misspelt
or bad parameter is refused as a whole, with a message naming the parameter and what to send,
before any work is done.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from functools import partial
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from audiosearch.errors import InvalidInputError
from audiosearch.index import ClipFilter, check_clip_filter, check_min_score, check_offset
from audiosearch.rank import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    STRATEGIES,
    check_flag,
    check_limit,
    check_strategy,
)

__all__ = [
    "DEFAULT_LIMIT", "DEFAULT_LIST_LIMIT", "ENDPOINT_PARAMETERS", "MAX_CLIP_ID", "ClipsParameters",
    "DeleteParameters", "IndexParameters", "ListParameters", "MapParameters", "Parameters",
    "SearchParameters", "StatsParameters", "check_clip_id", "check_clip_ids", "check_parameters",
    "parse_parameters",
]  # fmt: skip

#: The largest clip id a request may name: Jina's protobuf carries a document's whole numbers
#: as 32-bit integers, and the index allocates ids upwards from 1, far below this.
MAX_CLIP_ID = 2**31 - 1
#: Clips per /list page unless the request says otherwise.
DEFAULT_LIST_LIMIT = 50


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


def _unless_none(check: Callable[[object], object]) -> Callable[[object], object]:
    """``check`` for a parameter whose absence (None) means "the service's own setting"."""
    return lambda value: None if value is None else check(value)


def _duration(name: str, value: object) -> float | None:
    """A clip length bound, checked as the index checks it."""
    check_clip_filter(**{name: value})
    return None if value is None else float(value)  # type: ignore[arg-type]


def _path_glob(value: object) -> str | None:
    check_clip_filter(path_glob=value)
    return value  # type: ignore[return-value]


# Each parameter once: its type and range (for the schema), its check (for the message).
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT), BeforeValidator(check_limit)]
Offset = Annotated[int, Field(ge=0), BeforeValidator(check_offset)]
MinScore = Annotated[
    Annotated[float, Field(ge=-1.0, le=1.0)] | None, BeforeValidator(check_min_score)
]
MinDuration = Annotated[
    Annotated[float, Field(ge=0.0)] | None, BeforeValidator(partial(_duration, "min_duration"))
]
MaxDuration = Annotated[
    Annotated[float, Field(ge=0.0)] | None, BeforeValidator(partial(_duration, "max_duration"))
]
PathGlob = Annotated[Annotated[str, Field(min_length=1)] | None, BeforeValidator(_path_glob)]
Strategy = Annotated[
    str | None,
    Field(json_schema_extra={"enum": [*STRATEGIES, None]}),
    BeforeValidator(_unless_none(check_strategy)),
]
ClipIds = list[Annotated[int, Field(ge=0, le=MAX_CLIP_ID)]]


class Parameters(BaseModel):
    """The parameters of one endpoint; any other parameter is refused."""

    model_config = ConfigDict(extra="forbid")
    #: The endpoint these parameters are for, as the messages name it.
    endpoint: ClassVar[str] = ""


class SearchParameters(Parameters):
    """``/search`` (and ``/upload/search``): how many clips, which, and how they are ranked."""

    endpoint: ClassVar[str] = "/search"

    limit: Limit = Field(DEFAULT_LIMIT, description="How many clips to return")
    min_score: MinScore = Field(None, description="Leave out clips scoring less (cosine, -1..1)")
    min_duration: MinDuration = Field(None, description="Shortest clip to return, seconds")
    max_duration: MaxDuration = Field(None, description="Longest clip to return, seconds")
    path_glob: PathGlob = Field(
        None, description="Only clips whose path matches this fnmatch pattern, e.g. '*/drums/*'"
    )
    strategy: Strategy = Field(
        None,
        description="How window matches make a clip's score: "
        f"{' | '.join(STRATEGIES)} (default: flow.yml's)",
    )
    query_expansion: Annotated[
        bool | None, BeforeValidator(_unless_none(partial(check_flag, "query_expansion")))
    ] = Field(
        None,
        description="Search each query window again with the indexed window nearest it "
        "(default: flow.yml's); false: plain cosines",
    )
    duplicates: Annotated[bool, BeforeValidator(partial(check_flag, "duplicates"))] = Field(
        False, description="Return only copies of the query (re-encoded, trimmed, louder or "
        "quieter)",
    )  # fmt: skip
    like: Annotated[ClipIds, BeforeValidator(partial(check_clip_ids, "like"))] = Field(
        default_factory=list,
        description="Indexed clip ids liked: listed first, and the results move toward them",
    )
    unlike: Annotated[ClipIds, BeforeValidator(partial(check_clip_ids, "unlike"))] = Field(
        default_factory=list,
        description="Indexed clip ids disliked: left out, and the results move away from them",
    )

    @model_validator(mode="after")
    def _durations_in_order(self) -> SearchParameters:
        check_clip_filter(self.min_duration, self.max_duration)  # wrong only as a pair
        return self

    def clip_filter(self) -> ClipFilter | None:
        """The clips these parameters allow (None: all)."""
        return check_clip_filter(self.min_duration, self.max_duration, self.path_glob)


class ListParameters(Parameters):
    """``/list``: one page of the library, in clip id order."""

    endpoint: ClassVar[str] = "/list"

    offset: Offset = Field(0, description="Clips to skip")
    limit: Limit = Field(DEFAULT_LIST_LIMIT, description="Clips to return")


class IndexParameters(Parameters):
    """``/index`` takes no parameters."""

    endpoint: ClassVar[str] = "/index"


class ClipsParameters(Parameters):
    """``/clips`` takes no parameters."""

    endpoint: ClassVar[str] = "/clips"


class DeleteParameters(Parameters):
    """``/delete`` takes no parameters."""

    endpoint: ClassVar[str] = "/delete"


class StatsParameters(Parameters):
    """``/stats`` takes no parameters."""

    endpoint: ClassVar[str] = "/stats"


class MapParameters(Parameters):
    """``/map`` takes no parameters."""

    endpoint: ClassVar[str] = "/map"


#: Each flow endpoint's parameters.
ENDPOINT_PARAMETERS: dict[str, type[Parameters]] = {
    model.endpoint: model
    for model in (
        SearchParameters, ListParameters, IndexParameters, ClipsParameters, DeleteParameters,
        StatsParameters, MapParameters,
    )
}  # fmt: skip


P = TypeVar("P", bound=Parameters)


def parse_parameters(model: type[P], parameters: Mapping[str, Any] | None) -> P:
    """``parameters`` as ``model``, or :class:`InvalidInputError` naming the first bad one.

    Keys that start with ``__`` are Jina's own and are left out.
    """
    given = {k: v for k, v in (parameters or {}).items() if not str(k).startswith("__")}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise InvalidInputError(_message(model, exc)) from None


def check_parameters(endpoint: str, parameters: Mapping[str, Any] | None) -> None:
    """Raise :class:`InvalidInputError` for a parameter ``endpoint`` does not take or a bad
    value; endpoints not in :data:`ENDPOINT_PARAMETERS` pass."""
    model = ENDPOINT_PARAMETERS.get(endpoint)
    if model is not None:
        parse_parameters(model, parameters)


def _message(model: type[Parameters], exc: ValidationError) -> str:
    """What the first error of ``exc`` says, in the words of the core's checks."""
    error = exc.errors()[0]
    name = ".".join(map(str, error["loc"]))
    if error["type"] == "extra_forbidden":
        return unknown_parameter(model.endpoint, name, list(model.model_fields))
    if error["type"] == "value_error":  # raised by a core check: its message says what to do
        return str(error["ctx"]["error"])
    return f"{name}={error['input']!r}: {error['msg']}"


def unknown_parameter(endpoint: str, name: str, known: list[str]) -> str:
    """The message for a parameter ``endpoint`` does not take, with the likely one meant."""
    if not known:
        return f"{name}: {endpoint} takes no parameters; leave them out"
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{name}: not a parameter of {endpoint}; {hint}it takes {', '.join(known)}"
