"""The JSON schemas of issue 11: the structured-output tests check every answer against them, and the bench
times their compilation (benchmarks/grammar_speed.py). Nested objects, bounded arrays, enums, ranges, patterns,
lengths, optional fields, anyOf, $ref."""

from __future__ import annotations

from typing import Any

OBJ: dict[str, Any] = {"type": "object", "additionalProperties": False}
SCHEMAS: list[dict[str, Any]] = [
    {**OBJ, "properties": {"name": {"type": "string", "maxLength": 16}}, "required": ["name"]},
    {**OBJ, "properties": {"age": {"type": "integer", "minimum": 18, "maximum": 99}}, "required": ["age"]},
    {**OBJ, "properties": {"price": {"type": "number", "minimum": 0, "maximum": 1000}}, "required": ["price"]},
    {**OBJ, "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
    {**OBJ, "properties": {"color": {"enum": ["red", "green", "blue"]}}, "required": ["color"]},
    {
        **OBJ,
        "properties": {
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 2, "maxItems": 3}
        },
        "required": ["tags"],
    },
    {**OBJ, "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}}, "required": ["code"]},
    {**OBJ, "properties": {"word": {"type": "string", "minLength": 3, "maxLength": 6}}, "required": ["word"]},
    {
        **OBJ,
        "properties": {
            "city": {
                **OBJ,
                "properties": {"name": {"type": "string", "maxLength": 12}, "pop": {"type": "integer", "minimum": 0}},
                "required": ["name", "pop"],
            }
        },
        "required": ["city"],
    },
    {**OBJ, "properties": {"a": {"type": "integer"}, "b": {"type": "string", "maxLength": 10}}, "required": ["a"]},
    {
        **OBJ,
        "properties": {"v": {"anyOf": [{"type": "integer", "maximum": 50}, {"type": "string", "maxLength": 5}]}},
        "required": ["v"],
    },
    {**OBJ, "properties": {"n": {"type": ["integer", "null"]}}, "required": ["n"]},
    {
        **OBJ,
        "properties": {
            "xs": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 9}, "maxItems": 4}
        },
        "required": ["xs"],
    },
    {
        **OBJ,
        "properties": {"level": {"const": "high"}, "score": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["level", "score"],
    },
    {
        **OBJ,
        "properties": {
            "people": {
                "type": "array",
                "minItems": 1,
                "maxItems": 2,
                "items": {**OBJ, "properties": {"name": {"type": "string", "maxLength": 10}}, "required": ["name"]},
            }
        },
        "required": ["people"],
    },
    {"type": "array", "items": {"type": "integer", "maximum": 100}, "minItems": 1, "maxItems": 3},
    {"type": "string", "enum": ["yes", "no"]},
    {
        **OBJ,
        "properties": {
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
        },
        "required": ["lat", "lon"],
    },
    {
        **OBJ,
        "properties": {"date": {"type": "string", "pattern": "^20[0-9]{2}-[01][0-9]-[0-3][0-9]$"}},
        "required": ["date"],
    },
    {
        **OBJ,
        "properties": {
            "kind": {"enum": ["cat", "dog"]},
            "legs": {"type": "integer", "minimum": 0, "maximum": 4},
            "name": {"type": "string", "maxLength": 8},
        },
        "required": ["kind", "legs"],
    },
    {
        "$defs": {"p": {**OBJ, "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
        **OBJ,
        "properties": {"p": {"$ref": "#/$defs/p"}},
        "required": ["p"],
    },
]
