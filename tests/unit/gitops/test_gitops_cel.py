# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""CRD CEL rules through cel-python: the rules the shipped CRDs carry, Kubernetes typing and escaping."""

from __future__ import annotations

import json
from typing import Any

import pytest
from celpy import celtypes

from ansible_collections.edgeslm.pi5.scripts.gitops_validate.cel import (
    CelError,
    CelTransitionRule,
    CelUnsupported,
    compile_rule,
    escape_property,
    evaluate,
    evaluate_message,
    to_cel,
)
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.crd_schema import DEFAULT_SCHEMAS

KEDA = "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)"
HELM = "(has(self.chart) && !has(self.chartRef)) || (!has(self.chart) && has(self.chartRef))"
TRAEFIK = "self.startsWith('/')"
PORTS = "has(self.portName) != has(self.port)"
RECEIVER = "self.type != 'generic-oidc' || (has(self.oidcProviders) && size(self.oidcProviders) > 0)"
BUCKET = "self.provider != 'aws' || !has(self.sts) || self.sts.provider == 'aws'"


def _eval(rule: str, value: Any, schema: dict[str, Any] | None = None) -> bool:
    return evaluate(compile_rule(rule), to_cel(value, schema))


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        (KEDA, {"minReplicaCount": 1, "maxReplicaCount": 3}, True),
        (KEDA, {"minReplicaCount": 4, "maxReplicaCount": 3}, False),
        (KEDA, {"minReplicaCount": 101}, False),
        (KEDA, {}, True),
        (HELM, {"chart": {}}, True),
        (HELM, {"chart": {}, "chartRef": {}}, False),
        (HELM, {}, False),
        (TRAEFIK, "/api", True),
        (TRAEFIK, "api", False),
        (PORTS, {"port": 80}, True),
        (PORTS, {"port": 80, "portName": "http"}, False),
        (PORTS, {}, False),
        (RECEIVER, {"type": "generic-oidc", "oidcProviders": []}, False),
        (RECEIVER, {"type": "generic-oidc", "oidcProviders": [{}]}, True),
        (RECEIVER, {"type": "github"}, True),
        (BUCKET, {"provider": "aws", "sts": {"provider": "aws"}}, True),
        (BUCKET, {"provider": "aws", "sts": {"provider": "ldap"}}, False),
        ("self.type in ['a', 'b']", {"type": "b"}, True),
        ("self.all(x, x > 0)", [1, 2], True),
        ("self.exists(x, x > 1)", [1], False),
        ("self.matches('^[a-z]+$')", "abc", True),
    ],
)
def test_rules(rule: str, value: Any, expected: bool) -> None:
    assert _eval(rule, value) is expected


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        (BUCKET, {"provider": "aws", "sts": {}}),  # selecting an absent field is an error, as in CEL
        ("self.a && true", {"a": 1}),  # && needs booleans
        ("self.a", {"a": "x"}),  # a rule must give a boolean
    ],
)
def test_evaluation_errors(rule: str, value: Any) -> None:
    with pytest.raises(CelError):
        _eval(rule, value)


def test_transition_rules_are_skipped_on_create() -> None:
    with pytest.raises(CelTransitionRule, match="updates only"):
        compile_rule("self == oldSelf")
    with pytest.raises(CelUnsupported, match="optionalOldSelf"):
        compile_rule("oldSelf.hasValue()", optional_old_self=True)
    # a string mentioning oldSelf is no transition rule
    assert _eval("self != 'oldSelf'", "x") is True


@pytest.mark.parametrize(
    ("rule", "function"),
    [
        ("self.lowerAscii() == self", "lowerAscii"),  # Kubernetes strings extension
        ("isURL(self)", "isURL"),  # Kubernetes URL library
        ("quantity(self).isGreaterThan(quantity('1'))", "isGreaterThan, quantity"),
        ("self.split(',').size() > 0", "split"),
    ],
)
def test_functions_outside_the_library_are_not_checkable(rule: str, function: str) -> None:
    with pytest.raises(CelUnsupported, match=f"calls {function},"):
        compile_rule(rule)


def test_syntax_error_is_not_checkable() -> None:
    with pytest.raises(CelUnsupported, match="cannot parse"):
        compile_rule("self.a ==")


def test_values_are_typed_by_their_schema() -> None:
    number = {"type": "number"}
    assert isinstance(to_cel(2, number), celtypes.DoubleType)
    assert _eval("self == 2.0", 2, number) is True
    assert isinstance(to_cel(2, {"type": "integer"}), celtypes.IntType)
    assert isinstance(to_cel("80", {"x-kubernetes-int-or-string": True}), celtypes.StringType)
    stamp = to_cel("2026-01-02T03:04:05Z", {"type": "string", "format": "date-time"})
    assert isinstance(stamp, celtypes.TimestampType)
    assert isinstance(to_cel("5m", {"type": "string", "format": "duration"}), celtypes.DurationType)
    assert _eval("self > duration('1m')", "5m", {"type": "string", "format": "duration"}) is True
    # a value that does not parse stays a string (the schema check reports the format)
    assert isinstance(to_cel("soon", {"type": "string", "format": "date-time"}), celtypes.StringType)


def test_property_names_are_escaped_but_map_keys_are_not() -> None:
    schema = {
        "type": "object",
        "properties": {
            "x-y": {"type": "integer"},
            "a.b": {"type": "integer"},
            "if": {"type": "integer"},
            "__z": {"type": "integer"},
            "map": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    }
    value = {"x-y": 1, "a.b": 2, "if": 3, "__z": 4, "map": {"k-1": 5}}
    assert _eval("self.x__dash__y == 1 && self.a__dot__b == 2 && self.__if__ == 3", value, schema) is True
    assert _eval("self.__underscores__z == 4 && self.map['k-1'] == 5", value, schema) is True
    assert escape_property("a/b") == "a__slash__b"
    assert escape_property("1abc") is None  # not reachable from CEL


def test_message_expression() -> None:
    expression = compile_rule("'size ' + string(self.size) + ' is too large'")
    assert evaluate_message(expression, to_cel({"size": 5}, None)) == "size 5 is too large"


def test_every_shipped_rule_compiles_or_is_a_transition_rule() -> None:
    index = json.loads((DEFAULT_SCHEMAS / "index.json").read_text(encoding="utf-8"))
    for entry in index["schemas"]:
        for rule in entry["celRules"]:
            if rule["offline"] == "evaluated":
                compile_rule(rule["rule"])
            else:
                with pytest.raises(CelTransitionRule):
                    compile_rule(rule["rule"])
