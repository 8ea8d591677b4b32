"""Fake ECR and STS endpoints on 127.0.0.1 for zeroimage's tests.

ECR's GetAuthorizationToken is answered only when the request's Signature Version 4 is right: the
signature is computed again here by botocore's own signer, from the headers the request says it
signed and the secret of the access key it names, and compared. STS's AssumeRoleWithWebIdentity
answers with temporary credentials for the expected web identity token, and AssumeRole for a request
whose signature botocore recomputes. Every request is appended to
the log file as one JSON line.

usage: fake_aws.py CONFIG_JSON LOG_FILE   (prints the port it listens on, then serves)

CONFIG_JSON: {"keys": {ACCESS_KEY_ID: SECRET}, "tokens": {ACCESS_KEY_ID: SESSION_TOKEN},
              "ecr_password": PASSWORD, "web_identity_token": TOKEN,
              "sts_key": [ACCESS_KEY_ID, SECRET, SESSION_TOKEN], "expired": [ACCESS_KEY_ID],
              "sts_mode": "ok" | "stall" | "garbage", "container_token": TOKEN}
(GET /creds is a container credentials endpoint, for the authorization `container_token`; the
IAM Identity Center portal's GetRoleCredentials, at the URI and with the parameter names botocore's
own service model gives, hands `sts_key` out for the access token `sso_token` and the
[account, role] `sso_role`; PUT
/latest/api/token and GET /latest/meta-data/iam/security-credentials/ are an IMDSv2 instance
metadata service whose role has the first of `keys`.)
"""

import base64
import http.server
import json
import sys
import threading
import time
import urllib.parse

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CONFIG = json.loads(sys.argv[1])
LOG = sys.argv[2]
LOCK = threading.Lock()
# Where GetRoleCredentials is and how its parameters travel, from botocore's model of the service.
SSO = botocore.session.get_session().get_service_model("sso").operation_model("GetRoleCredentials")
SSO_WIRE = {name: shape.serialization["name"] for name, shape in SSO.input_shape.members.items()}


def log(entry):
    with LOCK:
        with open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")


def check_signature(handler, body):
    """None when the request's SigV4 signature is what botocore computes, else why not."""
    authorization = handler.headers.get("Authorization", "")
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return "no AWS4-HMAC-SHA256 Authorization header"
    fields = dict(
        part.strip().split("=", 1) for part in authorization[len("AWS4-HMAC-SHA256 "):].split(",")
    )
    key_id, date, region, service, terminator = fields["Credential"].split("/")
    secret = CONFIG["keys"].get(key_id)
    if secret is None:
        return "unknown key " + key_id
    signed = fields["SignedHeaders"].split(";")
    headers = {name: handler.headers[name] for name in signed if name != "host"}
    request = AWSRequest(
        method=handler.command,
        url="http://" + handler.headers["Host"] + handler.path,
        data=body,
        headers=headers,
    )
    token = CONFIG.get("tokens", {}).get(key_id)
    if token is not None and handler.headers.get("X-Amz-Security-Token") != token:
        return "wrong session token"
    signer = SigV4Auth(Credentials(key_id, secret, token), service, region)
    request.context["timestamp"] = handler.headers["X-Amz-Date"]
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    expected = signer.signature(string_to_sign, request)
    if expected != fields["Signature"]:
        return "signature mismatch: botocore's canonical request was " + json.dumps(canonical)
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/x-amz-json-1.1"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        log({"method": "PUT", "path": self.path})
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.answer(200, "imds-session-token", "text/plain")
        return self.answer(403, "{}")

    def do_GET(self):
        log({"method": "GET", "path": self.path,
             "authorization": self.headers.get("Authorization", "")})
        if self.path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") != "imds-session-token":
                return self.answer(401, "")
            role = self.path.rsplit("/", 1)[1]
            if role == "":
                return self.answer(200, "ci-role", "text/plain")
            key_id = next(iter(CONFIG["keys"]))
            return self.answer(200, json.dumps({
                "Code": "Success", "AccessKeyId": key_id,
                "SecretAccessKey": CONFIG["keys"][key_id], "Token": None}), "application/json")
        url = urllib.parse.urlsplit(self.path)
        if self.command == SSO.http["method"] and url.path == SSO.http["requestUri"]:
            return self.role_credentials(urllib.parse.parse_qs(url.query))
        if self.path == "/creds" and self.headers.get("Authorization") == CONFIG.get("container_token"):
            key_id = next(iter(CONFIG["keys"]))
            return self.answer(200, json.dumps({
                "AccessKeyId": key_id, "SecretAccessKey": CONFIG["keys"][key_id],
                "Expiration": "2099-01-01T00:00:00Z"}), "application/json")
        return self.answer(403, "{}")

    def role_credentials(self, query):
        token = self.headers.get(SSO_WIRE["accessToken"])
        asked = [query.get(SSO_WIRE["accountId"], [""])[0], query.get(SSO_WIRE["roleName"], [""])[0]]
        log({"method": "GET", "action": "GetRoleCredentials", "token": token, "asked": asked})
        if token != CONFIG.get("sso_token"):
            return self.answer(401, json.dumps({"message": "Session token not found or invalid"}),
                               "application/json")
        if asked != CONFIG.get("sso_role"):
            return self.answer(403, json.dumps({"message": "No access"}), "application/json")
        key_id, secret, token = CONFIG["sts_key"]
        return self.answer(200, json.dumps({"roleCredentials": {
            "accessKeyId": key_id, "secretAccessKey": secret, "sessionToken": token,
            "expiration": 4102444800000}}), "application/json")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        target = self.headers.get("X-Amz-Target", "")
        entry = {"path": self.path, "target": target, "body": body.decode("utf-8", "replace"),
                 "authorization": self.headers.get("Authorization", "")}
        if target.endswith("GetAuthorizationToken"):
            problem = check_signature(self, body)
            entry["signature"] = problem or "ok"
            log(entry)
            key_id = entry["authorization"].split("Credential=")[-1].split("/")[0]
            if key_id in CONFIG.get("expired", []):
                return self.answer(400, json.dumps({
                    "__type": "com.amazon.coral.service#ExpiredTokenException",
                    "message": "The security token included in the request is expired \x1b[31m"}))
            if problem is not None:
                return self.answer(403, json.dumps({
                    "__type": "InvalidSignatureException", "message": problem}))
            token = base64.b64encode(("AWS:" + CONFIG["ecr_password"]).encode()).decode()
            if target.startswith("SpencerFrontendService"):
                data = {"authorizationData": {"authorizationToken": token, "expiresAt": 1e10}}
            else:
                data = {"authorizationData": [{"authorizationToken": token, "expiresAt": 1e10,
                                               "proxyEndpoint": "https://fake"}]}
            return self.answer(200, json.dumps(data))
        form = urllib.parse.parse_qs(body.decode())
        entry["action"] = form.get("Action", [""])[0]
        if entry["action"] == "AssumeRole":
            entry["signature"] = check_signature(self, body) or "ok"
        log(entry)
        if entry["action"] == "AssumeRole":
            if entry["signature"] != "ok":
                return self.answer(403, "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code>"
                                   "<Message>" + entry["signature"] + "</Message></Error>"
                                   "</ErrorResponse>", "text/xml")
            key_id, secret, token = CONFIG["sts_key"]
            return self.answer(200, (
                "<AssumeRoleResponse><AssumeRoleResult><Credentials>"
                f"<AccessKeyId>{key_id}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>"
                f"<SessionToken>{token}</SessionToken></Credentials></AssumeRoleResult>"
                "</AssumeRoleResponse>"), "text/xml")
        if entry["action"] == "AssumeRoleWithWebIdentity":
            mode = CONFIG.get("sts_mode", "ok")
            if mode == "stall":
                time.sleep(600)
            if mode == "garbage":
                return self.answer(200, "<html>captive portal</html>", "text/html")
            if form.get("WebIdentityToken", [""])[0] != CONFIG["web_identity_token"]:
                return self.answer(400, "<ErrorResponse><Error><Type>Sender</Type><Code>"
                                   "InvalidIdentityToken</Code><Message>Couldn't retrieve "
                                   "verification key from your identity provider</Message>"
                                   "</Error></ErrorResponse>", "text/xml")
            key_id, secret, token = CONFIG["sts_key"]
            return self.answer(200, (
                "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
                f"<AccessKeyId>{key_id}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>"
                f"<SessionToken>{token}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>"
                "</Credentials></AssumeRoleWithWebIdentityResult>"
                "</AssumeRoleWithWebIdentityResponse>"), "text/xml")
        return self.answer(400, "{}")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
