"""JSON text as the store writes it: the stored columns, and the canonical form the history hashes.

`json.dumps` builds a new C encoder on every call (and, with options, a new `JSONEncoder`): on
the executor's path that set-up cost more than the encoding itself. The encoders here are built
once and give exactly `json.dumps`'s text (same C encoder, same options), without the check for
circular values, which JSON read from the store or built from it never has (a circular value
fails with RecursionError instead of ValueError).
"""

from __future__ import annotations

import json
from json import encoder as _encoder
from typing import Any


class Encoder:
    """`json.JSONEncoder(**options).encode` with its C encoder built once. A callable object, not a
    closure: psycopg keys its JSON dumpers by the function, and warns about closures."""

    def __init__(self, **options: Any):
        base = json.JSONEncoder(check_circular=False, **options)
        self._encode = base.encode
        self._chunks = None
        make = getattr(_encoder, "c_make_encoder", None)  # the C accelerator (json.encoder imports it from _json)
        if make is not None and base.indent is None:  # else json's own (slower) path
            strings = _encoder.encode_basestring_ascii if base.ensure_ascii else _encoder.encode_basestring
            self._chunks = make(None, base.default, strings, base.indent, base.key_separator, base.item_separator,
                                base.sort_keys, base.skipkeys, base.allow_nan)

    def __call__(self, value: Any) -> str:
        if self._chunks is None:
            return self._encode(value)
        return "".join(self._chunks(value, 0))


plain = Encoder()
"""`json.dumps(value)`: how SQLAlchemy writes the JSON columns (the engines' `json_serializer`)."""

canonical = Encoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
"""`json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)`: what a history row's hash covers."""
