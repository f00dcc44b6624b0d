"""The operator tests' polling helper: an API error while polling means "not yet", not success."""

from __future__ import annotations

import pytest
from kubernetes.client.rest import ApiException

from tests.operator.support import wait_for


def test_an_api_error_is_not_success() -> None:
    answers: list[object] = [ApiException(status=404), None, "ready"]

    def check() -> object:
        answer = answers.pop(0)
        if isinstance(answer, ApiException):
            raise answer
        return answer

    assert wait_for(check, timeout=5, interval=0.01) == "ready"


def test_only_api_errors_time_out() -> None:
    def check() -> None:
        raise ApiException(status=403)

    with pytest.raises(AssertionError, match="last value: ApiException"):
        wait_for(check, timeout=0.1, interval=0.01)
