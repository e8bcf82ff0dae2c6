"""Validators for clean webhook bodies that run in pydantic-core alone, without a Python call per field.

The field types of ``schemas.types`` are Python functions (``BeforeValidator``): exact, and their
errors feed the tolerant parse's field problems, but each field of each body costs a call from
Rust into Python, which was most of a body's parse (issue 11's profile: two million calls of the
blank-to-None validator for 10,000 deliveries). Here every model of ``schemas.shopify`` gets a
second validator built from pydantic-core's own schemas (unions, strict strings with patterns and
lengths, strict 64-bit ints, decimals, datetimes). It builds instances of the same classes.

It is a fast path, never a second definition of the rules: each native schema accepts only values
on which its ``schemas.types`` counterpart is known to give the same result (a non-blank string
within the text limit, an int in 64 bits, a plain decimal string, an ISO timestamp comfortably
inside the supported years, ...), and refuses everything else, including values the Python types
would accept (a number where text belongs, a padded amount, a naive timestamp). A body it refuses
is parsed by the models' own validators, exactly as before, problems and all
(``schemas.tolerance.parse_tolerant``); ``tests/test_native_bodies.py`` checks the agreement.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from pydantic import BaseModel
from pydantic_core import SchemaValidator, core_schema

from schemas import shopify, types
from schemas.shopify import ShopifyModel
from schemas.types import MAX_TEXT_CHARS

_WHITESPACE = "".join(f"\\x{{{code:x}}}" for code in range(sys.maxunicode + 1) if chr(code).isspace())
"""Exactly the characters ``str.isspace()`` (and ``str.strip()``) treat as blank, as a regex class:
Rust's ``\\s`` is not the same set (it leaves out the separators U+001C..U+001F)."""


def _strict_text(pattern: str | None = None, max_length: int = MAX_TEXT_CHARS) -> core_schema.CoreSchema:
    return core_schema.str_schema(strict=True, pattern=pattern, max_length=max_length)


def _constant(value: Any) -> core_schema.CoreSchema:
    """A step that turns whatever reached it into ``value`` (a strict int refuses None and text,
    and the default stands in for the error)."""
    return core_schema.with_default_schema(
        core_schema.int_schema(strict=True), on_error="default", default=value
    )


_BLANK_TEXT = _strict_text(pattern=f"^[{_WHITESPACE}]*$")
_BLANK = core_schema.chain_schema([_BLANK_TEXT, _constant(None)])
"""``""`` or whitespace: absent, as ``schemas.types._blank_to_none`` reads it."""
_NONE = core_schema.none_schema()


def _maybe(schema: core_schema.CoreSchema) -> core_schema.CoreSchema:
    """``null`` or blank text (both absent), else ``schema``. The usual value is tried first: a
    union pays for an error object per member that fails."""
    return core_schema.nullable_schema(core_schema.union_schema([schema, _BLANK], mode="left_to_right"))


_TEXT = _strict_text()
_FILLED_TEXT = _strict_text(pattern=f"[^{_WHITESPACE}]")
"""Text with a character that is not blank (a search: the first one usually is)."""
_ID = core_schema.int_schema(strict=True, ge=types.INT_MIN, le=types.INT_MAX)
_MONEY = core_schema.chain_schema(
    [
        # Plain decimal text, at most 18 integer digits (so below 10^18) and 34 characters (34
        # digits at most): ``schemas.types._money`` returns ``Decimal(text)`` for all of it.
        _strict_text(
            pattern=r"^[+-]?(?:[0-9]{1,18}(?:\.[0-9]*)?|\.[0-9]+)$", max_length=types.MONEY_MAX_DIGITS
        ),
        core_schema.decimal_schema(),
    ]
)
_TIMESTAMP = core_schema.chain_schema(
    [
        # Years 1971..2998: no offset moves such an instant out of [1970, 3000) UTC, so the range
        # check cannot fail; the boundary years take the exact path.
        _strict_text(
            pattern=r"^(?:197[1-9]|19[89][0-9]|2[0-8][0-9]{2}|29[0-8][0-9]|299[0-8])-[0-9]{2}-[0-9]{2}"
        ),
        core_schema.datetime_schema(tz_constraint="aware"),  # naive: the exact path reads it as UTC
    ]
)


def _known(enum: type[StrEnum]) -> core_schema.CoreSchema:
    """``schemas.types.known_or_text`` for text: the member it names, else the text itself."""
    member = core_schema.enum_schema(enum, list(enum.__members__.values()), sub_type="str")
    return _maybe(
        core_schema.chain_schema(
            [_FILLED_TEXT, core_schema.union_schema([member, _TEXT], mode="left_to_right")]
        )
    )


def _only(enum: type[StrEnum]) -> core_schema.CoreSchema:
    """``schemas.types.only_known`` for a member's exact text (other cases take the exact path)."""
    member = core_schema.enum_schema(enum, list(enum.__members__.values()), sub_type="str")
    return _maybe(core_schema.chain_schema([_TEXT, member]))


_FIELD_TYPES: list[tuple[Any, core_schema.CoreSchema]] = [
    (types.MaybeText, _maybe(_FILLED_TEXT)),
    (types.RawText, core_schema.nullable_schema(_TEXT)),
    (types.MaybeTextId, _maybe(_FILLED_TEXT)),
    (types.Id, _ID),
    (types.MaybeGid, _maybe(_strict_text(pattern=types.GID_PATTERN))),
    (types.MaybeId, _maybe(_ID)),
    (types.MaybeCount, _maybe(_ID)),
    (
        types.Quantity,
        core_schema.union_schema(
            [
                _ID,
                core_schema.chain_schema([_NONE, _constant(0)]),
                core_schema.chain_schema([_BLANK_TEXT, _constant(0)]),
            ],
            mode="left_to_right",
        ),
    ),
    (types.MaybeMoney, _maybe(_MONEY)),
    (types.MaybeTimestamp, _maybe(_TIMESTAMP)),
    (types.FinancialStatusField, _known(types.FinancialStatus)),
    (types.FulfillmentStatusField, _known(types.FulfillmentStatus)),
    (types.PublishedScopeField, _known(types.PublishedScope)),
    (types.ProductStatusField, _known(types.ProductStatus)),
    (types.EmailMarketingStateField, _only(types.EmailMarketingState)),
    (types.SmsMarketingStateField, _only(types.SmsMarketingState)),
    (types.MarketingOptInLevelField, _only(types.MarketingOptInLevel)),
    (types.ConsentCollectedFromField, _only(types.ConsentCollectedFrom)),
    (bool | None, core_schema.nullable_schema(core_schema.bool_schema())),
]
"""Each field type of the Shopify models and its native form. A model with a field of any other
type has no native validator (building one raises), so a new type cannot slip past unchecked."""


class _Builder:
    """Native schemas of models, each built once and inlined where it is used (the Shopify models
    do not nest recursively; a definition reference would cost a recursion guard per object)."""

    def __init__(self) -> None:
        self.models: dict[type[ShopifyModel], core_schema.CoreSchema] = {}

    def model(self, model: type[ShopifyModel]) -> core_schema.CoreSchema:
        known = self.models.get(model)
        if known is not None:
            return known
        hints = get_type_hints(model, include_extras=True)
        fields: dict[str, core_schema.ModelField] = {}
        for name, info in model.model_fields.items():
            schema = self.field(model, name, hints[name])
            if info.default_factory is not None:
                schema = core_schema.with_default_schema(schema, default_factory=info.default_factory)
            elif not info.is_required():
                schema = core_schema.with_default_schema(schema, default=info.default)
            fields[name] = core_schema.model_field(schema)
        config = core_schema.CoreConfig(extra_fields_behavior="allow", title=model.__name__)
        inner = core_schema.model_fields_schema(fields, model_name=model.__name__, extra_behavior="allow")
        self.models[model] = core_schema.model_schema(model, inner, config=config)
        return self.models[model]

    def field(self, model: type[BaseModel], name: str, hint: Any) -> core_schema.CoreSchema:
        for known, schema in _FIELD_TYPES:
            if hint == known:
                return schema
        args = get_args(hint)
        if (
            get_origin(hint) is Annotated
            and get_origin(args[0]) is list
            and args[1:] == get_args(types.ListOf)[1:]
        ):
            items = self.field(model, name, get_args(args[0])[0])
            empty = core_schema.with_default_schema(
                core_schema.int_schema(strict=True), on_error="default", default_factory=list
            )
            return core_schema.union_schema(
                [core_schema.list_schema(items), core_schema.chain_schema([_NONE, empty])],
                mode="left_to_right",
            )  # a list first: the usual value
        if isinstance(hint, type) and issubclass(hint, ShopifyModel):
            return self.model(hint)
        nested = [a for a in args if a is not type(None)]
        if (
            len(args) == 2
            and len(nested) == 1
            and isinstance(nested[0], type)
            and issubclass(nested[0], ShopifyModel)
        ):
            return core_schema.nullable_schema(self.model(nested[0]))
        raise TypeError(f"{model.__name__}.{name}: no native form for {hint!r}")


def native_validator(model: type[ShopifyModel]) -> SchemaValidator:
    """A validator for ``model`` that makes ``model`` instances in pydantic-core alone, or fails."""
    builder = _Builder()
    schema = builder.model(model)
    # pydantic-core reuses a complete model class's own validator wherever a schema names the
    # class (``__pydantic_complete__`` in its ``__dict__``), which would bring every Python field
    # validator back. The flag is lowered only while this validator is built (at import, see
    # below), so the schema above is what runs. Were that reuse ever to happen anyway, this would
    # be the exact validator: slower, never different (``tests/test_native_bodies.py`` checks it
    # makes no Python call).
    classes = list(builder.models)
    saved = [cls.__dict__.get("__pydantic_complete__", False) for cls in classes]
    try:
        for cls in classes:
            type.__setattr__(cls, "__pydantic_complete__", False)
        return SchemaValidator(schema)
    finally:
        for cls, flag in zip(classes, saved, strict=True):
            type.__setattr__(cls, "__pydantic_complete__", flag)


BODY_MODELS: tuple[type[ShopifyModel], ...] = tuple(
    model for model in vars(shopify).values()
    if isinstance(model, type) and issubclass(model, ShopifyModel) and model.identity
)  # fmt: skip
"""The models webhook bodies are read as (each names its record by ``identity``)."""

_VALIDATORS: dict[type[ShopifyModel], SchemaValidator] = {
    model: native_validator(model) for model in BODY_MODELS
}
"""Built at import, before any thread can be using the models (see :func:`native_validator`)."""


def validate_clean(model: type[ShopifyModel], body: dict[str, Any]) -> ShopifyModel | None:
    """``body`` as ``model`` when every field is in the plain form the native schemas take, else
    None (the exact, slower path decides: problems, identity errors and unusual forms)."""
    validator = _VALIDATORS.get(model)
    if validator is None:
        return None
    try:
        record: ShopifyModel = validator.validate_python(body)
    except ValueError:  # pydantic_core.ValidationError is one
        return None
    return record
