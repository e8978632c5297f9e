"""Drives all nine credential methods of the official obshell Python SDK
(PyPI `obshell`) against a running credhost, checking results field by field.

Usage: drive.py HOST PORT PASSWORD SSHD_PORT SSH_USER SSH_PASSWORD
Exits non-zero on the first mismatch.
"""

import base64
import os
import sys

from obshell import ClientSet
from obshell.auth.password import PasswordAuth
from obshell.service.client_v1 import OBShellHandleError


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def expect_error(err_code, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except OBShellHandleError as e:
        check(e.err_code == err_code, f"expected {err_code}, got {e.err_code}: {e.message}")
        return e
    raise AssertionError(f"expected {err_code}, the call succeeded")


class Rotating:
    """Sends each SDK call to the next of several servers, with one client
    (and so one cached public key), as behind a round-robin balancer."""

    def __init__(self, client, servers):
        self._client = client
        self._servers = servers
        self._next = 0

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            host, port = self._servers[self._next % len(self._servers)]
            self._next += 1
            self._client._host, self._client._port = host, port
            return attr(*args, **kwargs)

        return call


def main():
    host, port, password, sshd_port, user, ssh_password = sys.argv[1:7]
    client = ClientSet(host, int(port), PasswordAuth(password)).v1
    if os.environ.get("CREDHOST_SERVERS"):
        servers = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in os.environ["CREDHOST_SERVERS"].split(","))]
        client = Rotating(client, servers)
    targets = [{"ip": "127.0.0.1", "port": int(sshd_port)}]

    result = client.validate_credential("HOST", user, targets, ssh_password)
    check(result.succeeded_count == 1 and result.failed_count == 0, f"validate: {result}")
    check(result.details[0].connection_result == "SUCCESS", f"validate detail: {result}")
    check(result.details[0].target.port == int(sshd_port), "validate target")

    created = client.create_credential("sdk_web", "HOST", user, targets, ssh_password, description="from the SDK")
    check(created.name == "sdk_web" and created.target_type == "HOST", f"create: {created}")
    check(created.description == "from the SDK", "create description")
    check(created.ssh_secret.username == user and created.ssh_secret.type == "PASSWORD", "create ssh_secret")
    check(created.ssh_secret.targets[0].ip == "127.0.0.1", "create target ip")
    check(created.ssh_secret.targets[0].port == int(sshd_port), "create target port")
    check(created.create_time and created.update_time, "create times")
    cid = created.credential_id

    got = client.get_credential(cid)
    check(got.credential_id == cid and got.name == "sdk_web", f"get: {got}")
    check(got.create_time == created.create_time, "get create_time")

    page = client.list_credentials()
    check(page.page.total_elements == 1, f"list total: {page}")
    check([c.credential_id for c in page.contents] == [cid], f"list contents: {page}")
    page = client.list_credentials(target_type="HOST", sort="name", sort_order="desc")
    check(len(page.contents) == 1, "list filtered")

    # obshell answers a bind error when the SDK leaves passphrase out.
    expect_error("Common.BindJsonFailed", client.update_credential, cid, "sdk_web2", user, targets)
    updated = client.update_credential(cid, "sdk_web2", user, targets, "", description="renamed")
    check(updated.name == "sdk_web2" and updated.description == "renamed", f"update: {updated}")
    error = expect_error("Credential.SSH.ValidationFailed", client.update_credential, cid, "x", user, targets, "wrong-pw")
    check("wrong-pw" not in error.message, "a passphrase leaked into an error")

    results = client.batch_validate_credentials([cid])
    check(len(results) == 1 and results[0].credential_id == cid, f"batch validate: {results}")
    check(results[0].succeeded_count == 1, f"batch validate count: {results}")
    expect_error("Credential.NotFound", client.batch_validate_credentials, [cid, 987654])

    check(client.update_credential_encrypt_secret_key(base64.b64encode(os.urandom(32)).decode()) is True, "rotate")
    expect_error("Common.IllegalArgument", client.update_credential_encrypt_secret_key, base64.b64encode(b"short").decode())
    results = client.batch_validate_credentials([cid])
    check(results[0].succeeded_count == 1, f"validate after rotation: {results}")

    expect_error("Credential.Name.AlreadyExists", client.create_credential, "SDK_WEB2", "HOST", user,
                 [{"ip": "127.0.0.3", "port": 1}], ssh_password)
    check(client.batch_delete_credentials([cid, 424242]) is True, "batch delete")
    expect_error("Credential.NotFound", client.get_credential, cid)
    expect_error("Credential.NotFound", client.delete_credential, cid)
    created = client.create_credential("sdk_again", "HOST", user, targets, ssh_password)
    check(client.delete_credential(created.credential_id) is True, "delete")
    check(client.list_credentials().page.total_elements == 0, "empty at the end")
    print("sdk: all nine credential methods behaved")


if __name__ == "__main__":
    main()
