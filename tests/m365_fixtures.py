"""Fixtures of the Microsoft 365 tests, loaded by their modules' pytest_plugins.

A plugin rather than an import, so that tests take them by name as they take conftest's.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from check_mailgw.sandbox.m365.access_tokens import AccessTokens
from check_mailgw.sandbox.m365.tenant import SigningKey


@pytest.fixture(scope="module")
def foreign_tokens() -> AccessTokens:
    """Tokens signed with a key the sandbox does not know."""
    return AccessTokens(SigningKey.generate())


@pytest.fixture
def https(ca_file: Path) -> Iterator[requests.Session]:
    """A requests session trusting only the sandbox CA, whatever the environment says."""
    with requests.Session() as session:
        # Without this, REQUESTS_CA_BUNDLE in the environment overrides verify.
        session.trust_env = False
        session.verify = str(ca_file)
        yield session
