"""What the fake Okta answers with: a status, headers and a body, and Okta's two error shapes
(the Management API's, as recorded in ``okta_payloads/error_*.json``, and OAuth's)."""

import json
import secrets
from dataclasses import dataclass, field


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


class Refusal(Exception):
    """Raised deep in a request's handling to answer with ``reply`` at once."""

    def __init__(self, reply: Reply):
        self.reply = reply


def okta_error(status: int, code: str, summary: str) -> Reply:
    error_id = "oae" + secrets.token_urlsafe(17)[:22]
    document = {"errorCode": code, "errorSummary": summary, "errorLink": code, "errorId": error_id, "errorCauses": []}
    return Reply(status, json.dumps(document, separators=(",", ":")).encode())


def access_denied() -> Reply:
    return okta_error(403, "E0000006", "You do not have permission to perform the requested action")


def oauth_error(status: int, error: str, description: str) -> Reply:
    return Reply(status, json.dumps({"error": error, "error_description": description}).encode())
