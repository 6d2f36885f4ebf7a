"""Certificates for TLS tests, made with the openssl command."""
import os
import subprocess


def openssl(*args):
    subprocess.check_call(["openssl"] + list(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ca_cert(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", "/CN=" + name, "-keyout", os.path.join(d, name + ".key"), "-out", os.path.join(d, name + ".crt"))
    return os.path.join(d, name + ".crt")


def signed_cert(d, name, ca, extensions):
    key, csr, crt, ext = (os.path.join(d, name + s) for s in (".key", ".csr", ".crt", ".ext"))
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + name,
             "-keyout", key, "-out", csr)
    with open(ext, "w") as f:
        f.write(extensions + "\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca + ".crt", "-CAkey", ca + ".key", "-CAcreateserial", "-days", "2",
             "-extfile", ext, "-out", crt)
    return crt, key
