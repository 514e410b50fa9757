"""Bootstrap tokens and node credentials: which tokens authenticate, as whom."""

from __future__ import annotations

import base64
from typing import Any

from setpoint.api.auth.bootstraptokens import new_token, token_secret, user_of_secret
from setpoint.api.auth.nodecredentials import NodeCredentials
from setpoint.meta.timestamps import rfc3339

NOW = 1_800_000_000.0


def stored(token: str, **extra: str) -> dict[str, Any]:
    """The Secret as the API server stores it (stringData folded into base64 data)."""
    secret = token_secret(token)
    data = {**secret.pop("stringData"), **extra}
    secret["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return secret


def test_new_tokens_have_the_bootstrap_form() -> None:
    token = new_token()
    token_id, _, secret = token.partition(".")
    assert (len(token_id) == 6 and len(secret) == 16 and token.islower()) or token.isdigit()


def test_a_valid_token_is_a_bootstrapper() -> None:
    user = user_of_secret(stored("abcdef.0123456789abcdef"), "abcdef", "0123456789abcdef", now=NOW)
    assert user is not None
    assert user.name == "system:bootstrap:abcdef"
    assert user.groups == ("system:bootstrappers",)


def test_extra_groups_only_under_bootstrappers() -> None:
    secret = stored(
        "abcdef.0123456789abcdef",
        **{"auth-extra-groups": "system:bootstrappers:workers,system:masters"},
    )
    user = user_of_secret(secret, "abcdef", "0123456789abcdef", now=NOW)
    assert user is not None
    assert user.groups == ("system:bootstrappers", "system:bootstrappers:workers")


def test_expired_wrong_unusable_or_deleted_tokens_are_nobody() -> None:
    token_id, secret_value = "abcdef", "0123456789abcdef"
    token = f"{token_id}.{secret_value}"
    expired = stored(token, expiration=rfc3339(NOW - 1))
    assert user_of_secret(expired, token_id, secret_value, now=NOW) is None
    assert user_of_secret(stored(token), token_id, "ffffffffffffffff", now=NOW) is None
    unusable = stored(token, **{"usage-bootstrap-authentication": "false"})
    assert user_of_secret(unusable, token_id, secret_value, now=NOW) is None
    deleting = stored(token)
    deleting["metadata"]["deletionTimestamp"] = rfc3339(NOW)
    assert user_of_secret(deleting, token_id, secret_value, now=NOW) is None
    wrong_type = {**stored(token), "type": "Opaque"}
    assert user_of_secret(wrong_type, token_id, secret_value, now=NOW) is None
    not_yet = stored(token, expiration=rfc3339(NOW + 60))
    assert user_of_secret(not_yet, token_id, secret_value, now=NOW) is not None


def test_node_credentials_name_their_node_and_only_it() -> None:
    credentials = NodeCredentials(b"k" * 32)
    token = credentials.issue("node-1.example")
    assert credentials.node_of(token) == "node-1.example"
    forged = token.replace("node-1.example", "node-2.example")
    assert credentials.node_of(forged) is None
    assert NodeCredentials(b"j" * 32).node_of(token) is None
    assert credentials.node_of("spnode.") is None
    assert credentials.node_of("anything") is None
