"""The console API's responses checked against broker/console/openapi.yaml
with openapi-core (path and operation lookup, status codes, OpenAPI 3.0
schemas with `nullable` and `$ref`).

The document is published open to additions (no `additionalProperties:
false`, so a client generated from it keeps working when a field is
added); the tests read it closed: every object schema that lists its
properties is taken as listing all of them, so a field the broker sends
but the document does not name fails a test, as does a missing required
field, a wrong type or an undocumented status. Paths the API does not have
(a 404 for an unknown endpoint, a 405 for a method it does not take) are
checked against the Error schema alone."""

import copy
import json
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

OPENAPI = Path(__file__).resolve().parents[2] / "broker" / "console" / "openapi.yaml"
METHODS = ("get", "put", "post", "patch", "delete")


def closed(node):
    """A copy of `node` where every object schema listing properties
    allows no others."""
    node = copy.deepcopy(node)

    def walk(n):
        if isinstance(n, dict):
            if "properties" in n and "additionalProperties" not in n:
                n["additionalProperties"] = False
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)
    walk(node)
    return node


def describe(exc):
    """openapi-core's exception with the schema errors it wraps."""
    parts = [repr(exc)]
    cause = exc
    while cause is not None:
        for e in getattr(cause, "schema_errors", None) or ():
            parts.append(f"  {list(e.absolute_path)}: {e.message}")
        cause = cause.__cause__
    return "\n".join(parts)


class Spec:
    def __init__(self, path=OPENAPI):
        self.raw = yaml.safe_load(Path(path).read_text())
        self.doc = closed(self.raw)
        self.api = OpenAPI.from_dict(self.doc)
        self.error = OAS30Validator(self.doc["components"]["schemas"]["Error"])

    def operations(self):
        """{(METHOD, path template): operation} of the document."""
        return {(m.upper(), p): op for p, item in self.raw["paths"].items()
                for m, op in item.items() if m in METHODS}

    @staticmethod
    def _request(method, url_path, query, body, headers):
        path = urlsplit(url_path).path
        return MockRequest("http://127.0.0.1", method, path, args=list(query or []),
                           headers=headers or {}, data=body,
                           content_type="application/json")

    def check_request(self, method, url_path, query=None, body=None, headers=None):
        """A request the tests call valid is valid by the document."""
        req = self._request(method, url_path, query, body, headers)
        try:
            self.api.validate_request(req)
        except Exception as e:  # openapi-core raises one class per kind of mismatch
            raise AssertionError(f"request {method} {url_path} {query or ''} {body!r} "
                                 f"is not as documented:\n{describe(e)}") from None

    def check_response(self, method, url_path, query, status, content_type, body):
        """`body` (bytes) answered with `status` is what the document says
        the operation answers with that status."""
        where = f"{method} {url_path} {query or ''} -> {status}"
        assert (content_type or "").split(";")[0].strip() == "application/json", \
            f"{where}: Content-Type {content_type!r}"
        req = self._request(method, url_path, query, None, None)
        resp = MockResponse(body, status_code=status, content_type="application/json")
        try:
            self.api.validate_response(req, resp)
        except (PathNotFound, OperationNotFound):
            assert status in (404, 405), f"{where}: not a documented operation"
            errors = [e.message for e in self.error.iter_errors(json.loads(body))]
            assert not errors, f"{where}: not the Error schema: {errors} in {body!r}"
        except Exception as e:  # as above
            raise AssertionError(f"{where}: response not as documented:\n{describe(e)}\n"
                                 f"body: {body[:2000]!r}") from None


SPEC = Spec()
