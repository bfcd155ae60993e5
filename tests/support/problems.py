"""Reading the API's one error shape (RFC 9457 problem details) in tests."""

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "errors"}


def problem(response, status: int | None = None) -> dict:
    """The problem body of an error ``response``, checked for the shape (and ``status`` when given)."""
    if status is not None:
        assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json", response.content
    body = response.json()
    assert set(body) == PROBLEM_MEMBERS, body
    assert body["status"] == response.status_code
    assert body["type"] == f"urn:policyhub:problem:{body['code']}"
    assert body["detail"]
    return body
