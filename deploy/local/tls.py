"""A throwaway certificate authority for the local services' TLS listeners (openssl CLI): a CA
and one server certificate valid for the loopback names, as PEM files. Development only; a
real deployment brings its own certificates (deploy/k8s: the ``kafka-tls`` Secret)."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SUBJECT = "/O=StyleStream development"


@dataclass(frozen=True)
class ServerCertificate:
    ca: Path  # the CA certificate clients trust
    chain: Path  # the server's PKCS#8 key followed by its certificate (Kafka's PEM keystore)


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is needed for a local TLS listener: apt-get install openssl")
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr[-2000:]}")


def server_certificate(
    folder: Path, ca_file: Path, host: str, days: int = 825
) -> ServerCertificate:
    """The CA (written to ``ca_file``, its key kept in ``folder``) and a server certificate for
    ``host``, localhost and 127.0.0.1; made once, reused while all the files exist."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    chain = folder / "server.pem"
    made = [ca_file, folder / "ca.key", chain]
    if all(p.exists() for p in made):
        return ServerCertificate(ca_file, chain)
    ca_file.parent.mkdir(parents=True, exist_ok=True)
    names = {"DNS:localhost", "IP:127.0.0.1", f"{'IP' if _is_ip(host) else 'DNS'}:{host}"}
    (folder / "san.ext").write_text(f"subjectAltName={','.join(sorted(names))}\n")
    steps = [
        ("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
         str(ca_file), "-days", str(days), "-subj", f"{SUBJECT} CA"),
        ("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "server.key"),
        ("req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", f"/CN={host}"),
        ("x509", "-req", "-in", "server.csr", "-CA", str(ca_file), "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.crt", "-days", str(days), "-extfile", "san.ext"),
    ]  # fmt: skip
    for step in steps:
        _openssl(*step, cwd=folder)
    chain.write_text((folder / "server.key").read_text() + (folder / "server.crt").read_text())
    chain.chmod(0o600)
    return ServerCertificate(ca_file, chain)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
