"""docs/openapi.yaml against the running server: every documented operation
exists and answers with a documented status, content type, headers and a
body that matches its schema (a schema with additionalProperties: false
admits no other field); docs/api.md lists the same routes."""
import json
import os
import re
import sys

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import pmtest  # noqa: E402
from pmtest import ServerCase, SOURCE_DIR, WSClient, job_files, png_bytes, test_mask  # noqa: E402

SPEC_PATH = os.path.join(SOURCE_DIR, "docs", "openapi.yaml")
API_MD = os.path.join(SOURCE_DIR, "docs", "api.md")
METHODS = ("get", "post", "put", "delete", "patch")


class Spec:
    def __init__(self, doc):
        self.doc = doc

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            cur = self.doc
            for part in ref[2:].split("/"):
                cur = cur[part]
            node = cur
        return node

    def validate(self, schema, value, where="$"):
        s = self.resolve(schema)
        if value is None:
            if not s.get("nullable"):
                raise AssertionError("%s: null where %s is required" % (where, s.get("type")))
            return
        t = s.get("type")
        if t == "object":
            if not isinstance(value, dict):
                raise AssertionError("%s: expected an object, got %r" % (where, value))
            for r in s.get("required", []):
                if r not in value:
                    raise AssertionError("%s: missing required property %r in %r" % (where, r, sorted(value)))
            props = s.get("properties", {})
            for k, sub in props.items():
                if k in value:
                    self.validate(sub, value[k], where + "." + k)
            extra = s.get("additionalProperties", True)
            for k in value:
                if k in props or extra is True:
                    continue
                if extra is False:
                    raise AssertionError("%s: undocumented property %r" % (where, k))
                self.validate(extra, value[k], where + "." + k)
        elif t == "array":
            if not isinstance(value, list):
                raise AssertionError("%s: expected an array" % where)
            for i, v in enumerate(value):
                self.validate(s.get("items", {}), v, "%s[%d]" % (where, i))
        elif t == "string":
            if not isinstance(value, str):
                raise AssertionError("%s: expected a string, got %r" % (where, value))
            if "pattern" in s and not re.search(s["pattern"], value):
                raise AssertionError("%s: %r does not match %s" % (where, value, s["pattern"]))
        elif t == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                raise AssertionError("%s: expected an integer, got %r" % (where, value))
            if "minimum" in s and value < s["minimum"] or "maximum" in s and value > s["maximum"]:
                raise AssertionError("%s: %r out of range" % (where, value))
        elif t == "number":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise AssertionError("%s: expected a number, got %r" % (where, value))
        elif t == "boolean":
            if not isinstance(value, bool):
                raise AssertionError("%s: expected a boolean, got %r" % (where, value))
        if "enum" in s and value not in s["enum"]:
            raise AssertionError("%s: %r is not one of %r" % (where, value, s["enum"]))


class OpenAPI(ServerCase):
    server_args = ["--threads", "1"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with open(SPEC_PATH) as f:
            cls.spec = Spec(yaml.safe_load(f))
        r = cls.srv.submit(cls.img_png, cls.mask_png)
        cls.job_id = r.json()["id"]
        cls.srv.wait_job(cls.job_id)

    def operations(self):
        for path, item in self.spec.doc["paths"].items():
            for method in METHODS:
                if method in item:
                    yield path, method, item[method]

    def check_response(self, path, method, op, r):
        where = "%s %s -> %d" % (method.upper(), path, r.status)
        responses = op["responses"]
        self.assertIn(str(r.status), responses, "%s: undocumented status; body %r" % (where, r.body[:200]))
        doc = self.spec.resolve(responses[str(r.status)])
        for h in doc.get("headers", {}):
            self.assertIsNotNone(r.header(h), "%s: documented header %s missing" % (where, h))
        content = doc.get("content")
        if not content:
            return
        ctype = (r.header("Content-Type") or "").split(";")[0].strip()
        self.assertIn(ctype, content, "%s: content type %r not documented (%r)" % (where, ctype, list(content)))
        if ctype == "application/json":
            self.spec.validate(content[ctype]["schema"], json.loads(r.body.decode()), where)

    def call(self, path, method, op, job_id=None):
        url = path.replace("{id}", job_id or self.job_id)
        if method == "post" and "requestBody" in op:
            if path.endswith("/colorize"):
                return self.srv.post_form(url, {}, job_files(self.img_png))
            return self.srv.post_form(url, {"format": "png"}, job_files(self.img_png, self.mask_png))
        return self.srv.request(method.upper(), url)

    def test_every_operation_answers_as_documented(self):
        checked = 0
        for path, method, op in self.operations():
            with self.subTest(op="%s %s" % (method, path)):
                if path == "/ws":
                    ws = WSClient(self.srv.port, "/ws")
                    try:
                        ev = ws.recv_json()
                    finally:
                        ws.close()
                    self.assertIn("101", op["responses"])
                    self.spec.validate(op["responses"]["101"]["content"]["application/json"]["schema"], ev)
                    checked += 1
                    continue
                r = self.call(path, method, op)
                self.check_response(path, method, op, r)
                checked += 1
        self.assertGreaterEqual(checked, 14)

    def test_documented_errors(self):
        unknown = "f" * 32
        cases = [
            ("/api/v1/jobs/{id}", "get", unknown, 404),
            ("/api/v1/jobs/{id}", "delete", unknown, 404),
            ("/api/v1/jobs/{id}", "delete", None, 409),
            ("/api/v1/jobs/{id}/result", "get", unknown, 404),
            ("/api/v1/jobs", "get", None, 405),
        ]
        for path, method, jid, status in cases:
            with self.subTest(path=path, method=method, status=status):
                op = self.spec.doc["paths"][path][method]
                r = self.call(path, method, op, job_id=jid)
                self.assertEqual(r.status, status, r)
                self.check_response(path, method, op, r)
        posts = [
            ("/api/v1/jobs", {"priority": "12"}, job_files(self.img_png, self.mask_png), 400),
            ("/api/v1/jobs", {"model": "nosuch"}, job_files(self.img_png, self.mask_png), 404),
            ("/api/v1/jobs", {}, job_files(b"not an image", self.mask_png), 415),
            ("/api/v1/jobs", {}, job_files(self.img_png, png_bytes(test_mask(10, 10))), 422),
            ("/api/v1/inpaint", {}, job_files(self.img_png, png_bytes(test_mask(10, 10))), 422),
            ("/api/v1/inpaint", {}, job_files(self.img_png), 400),
        ]
        for path, fields, files, status in posts:
            with self.subTest(path=path, fields=fields, status=status):
                r = self.srv.post_form(path, fields, files)
                self.assertEqual(r.status, status, r)
                self.check_response(path, "post", self.spec.doc["paths"][path]["post"], r)

    def test_api_md_lists_the_same_routes(self):
        with open(API_MD) as f:
            md = f.read()
        documented = set(re.findall(r"^### `(GET|POST|DELETE) ([^`]+)`", md, re.M))
        spec_ops = {(m.upper(), p) for p, m, op in self.operations() if "405" not in op["responses"] or
                    len(op["responses"]) > 1}
        self.assertEqual(documented, spec_ops)


if __name__ == "__main__":
    pmtest.run_tests(__name__)
