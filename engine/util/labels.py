"""Ray's label-scheduling options, checked as Ray checks them: `label_selector` and
`fallback_strategy` of `@remote` / `.options()`.

ownrun does not schedule by node labels. The options are validated when given (a malformed
selector raises TypeError/ValueError as in Ray, so code written for Ray fails the same way),
and a task or actor that asks for label scheduling is refused when it is submitted, naming the
option (`refusal`). Pure functions; thread-safe.
"""

from __future__ import annotations

import re

# Kubernetes label syntax, as Ray's ray/_private/label_utils.py has it.
_NAME = r"([a-zA-Z0-9]([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?)"
_PREFIX = re.compile(rf"^({_NAME}?(\.{_NAME}?)*)$")
_SELECTOR = re.compile(rf"^!?(?:in)?\({_NAME}(?:, ?{_NAME})*\)$|^!?{_NAME}$")
_RULES = ("Name must be 63 chars or less beginning and ending with an alphanumeric character "
          "([a-z0-9A-Z]) with dashes (-), underscores (_), dots (.), and alphanumerics between.")
OPTIONS = ("label_selector", "fallback_strategy")


def check_selector(selector, option: str = "label_selector") -> None:
    """Raises TypeError (not a dict) or ValueError (a bad key or value) for a label selector."""
    if selector is None:
        return
    if not isinstance(selector, dict):
        raise TypeError(f"option {option} must be a dict of label -> selector, got {type(selector).__name__}")
    for key, value in selector.items():
        if not isinstance(key, str):
            raise TypeError(f"option {option}: label keys must be strings, got {key!r}")
        prefix, _, name = key.rpartition("/")
        if "/" in key and (len(prefix) > 253 or not _PREFIX.fullmatch(prefix)):
            raise ValueError(f"option {option}: invalid label key prefix `{prefix}`: a series of DNS labels "
                             "separated by dots (.), not longer than 253 characters in total")
        if len(name) > 63 or not re.fullmatch(_NAME, name):
            raise ValueError(f"option {option}: invalid label key name `{name}`. {_RULES}")
        if value is not None and value != "" and (not isinstance(value, str) or not _SELECTOR.fullmatch(value)):
            raise ValueError(f"option {option}: invalid label selector value `{value}`: an optional ! and "
                             f"in(...) around label values. {_RULES}")


def check_fallback(strategy) -> None:
    """Raises TypeError (not a list) or ValueError (a bad element) for a fallback strategy."""
    if strategy is None:
        return
    if not isinstance(strategy, list):
        raise TypeError(f"option fallback_strategy must be a list of dicts, got {type(strategy).__name__}")
    for element in strategy:
        if not isinstance(element, dict) or not element:
            raise ValueError(f"option fallback_strategy: each element must be a non-empty dict, got {element!r}")
        unknown = set(element) - {"label_selector"}
        if unknown:
            raise ValueError(f"option fallback_strategy: unsupported option {sorted(unknown)[0]!r} "
                             "(only 'label_selector' is)")
        selector = element.get("label_selector")
        if selector and not isinstance(selector, dict):
            raise ValueError("option fallback_strategy: the value of 'label_selector' must be a dict")
        check_selector(selector, "fallback_strategy")


def check(options: dict) -> None:
    check_selector(options.get("label_selector"))
    check_fallback(options.get("fallback_strategy"))


def refusal(options: dict, what: str) -> str | None:
    """The error for submitting `what` with label scheduling asked for, or None."""
    for option in OPTIONS:
        if options.get(option):
            return (f"{what}: option {option}={options[option]!r} is not supported by ownrun "
                    "(nodes have no labels to schedule by)")
    return None
