"""A fake Google OAuth token endpoint and metadata server on 127.0.0.1 for zeroimage's tests.

A service account's JWT is answered only when its RS256 signature verifies with the account's public
key (Python's `cryptography`), its audience is this endpoint and its scope and times are right; an
authorized_user refresh only for the expected client and refresh token. The metadata server wants
`Metadata-Flavor: Google`. Every request is appended to the log file as one JSON line.

usage: fake_google.py CONFIG_JSON LOG_FILE   (prints the port it listens on, then serves)

CONFIG_JSON: {"public_key_pem": PEM, "client_email": EMAIL, "refresh_token": TOKEN,
              "client_id": ID, "client_secret": SECRET, "access_token": TOKEN}
"""

import base64
import http.server
import json
import sys
import threading
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

CONFIG = json.loads(sys.argv[1])
LOG = sys.argv[2]
LOCK = threading.Lock()
PUBLIC = serialization.load_pem_public_key(CONFIG["public_key_pem"].encode())


def log(entry):
    with LOCK:
        with open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")


def unb64(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def check_jwt(jwt, audience):
    header, claims, signature = jwt.split(".")
    try:
        PUBLIC.verify(unb64(signature), (header + "." + claims).encode(), padding.PKCS1v15(),
                      hashes.SHA256())
    except Exception:
        return "Invalid JWT Signature."
    header, claims = json.loads(unb64(header)), json.loads(unb64(claims))
    if header.get("alg") != "RS256":
        return "alg is not RS256"
    if claims.get("iss") != CONFIG["client_email"] or claims.get("aud") != audience:
        return "wrong iss or aud: " + json.dumps(claims)
    if claims.get("scope") != "https://www.googleapis.com/auth/cloud-platform":
        return "wrong scope"
    if not claims["iat"] - 60 <= time.time() <= claims["exp"] or claims["exp"] - claims["iat"] > 3600:
        return "wrong times"
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, data):
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        log({"method": "GET", "path": self.path, "flavor": self.headers.get("Metadata-Flavor")})
        if (self.path == "/computeMetadata/v1/instance/service-accounts/default/token"
                and self.headers.get("Metadata-Flavor") == "Google"):
            return self.answer(200, {"access_token": CONFIG["access_token"], "expires_in": 3599,
                                     "token_type": "Bearer"})
        return self.answer(403, {"error": "missing Metadata-Flavor"})

    def do_POST(self):
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        grant = form.get("grant_type", [""])[0]
        problem = None
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            audience = "http://" + self.headers["Host"] + self.path
            problem = check_jwt(form["assertion"][0], audience)
        elif grant == "refresh_token":
            if (form.get("refresh_token") != [CONFIG["refresh_token"]]
                    or form.get("client_id") != [CONFIG["client_id"]]
                    or form.get("client_secret") != [CONFIG["client_secret"]]):
                problem = "Token has been expired or revoked."
        else:
            problem = "unsupported grant_type"
        log({"method": "POST", "grant": grant, "problem": problem})
        if problem is not None:
            return self.answer(400, {"error": "invalid_grant", "error_description": problem})
        return self.answer(200, {"access_token": CONFIG["access_token"], "expires_in": 3599,
                                 "token_type": "Bearer"})


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
