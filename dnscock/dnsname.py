"""Domain-name syntax: split into labels, validate, compare (RFC 1035 §2.3)."""

import re

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63

# Host names are letters, digits and hyphens; container and image names add "_"
# (and DNS itself allows any octet), so "_" is accepted as well.
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$")


def split_name(name: str) -> tuple[str, ...]:
    """Lower-cased labels of ``name``, left to right; "" and "." give ()."""
    name = name.strip().rstrip(".").lower()
    return tuple(name.split(".")) if name else ()


def is_valid_label(label: str) -> bool:
    return len(label) <= MAX_LABEL_LENGTH and _LABEL.match(label) is not None


def is_valid_name(name: str) -> bool:
    """True for a name of one or more valid labels, at most 253 characters."""
    labels = split_name(name)
    return (
        bool(labels)
        and len(".".join(labels)) <= MAX_NAME_LENGTH
        and all(is_valid_label(label) for label in labels)
    )

