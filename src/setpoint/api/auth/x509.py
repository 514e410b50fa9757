"""Client certificates: a TLS client that presents a certificate signed by the cluster CA is
the user the certificate names, as kube-apiserver's x509 authenticator
(``staging/src/k8s.io/apiserver/pkg/authentication/request/x509``) reads it: the subject's
Common Name is the user name, each Organization a group.

The TLS layer has already verified the chain when the certificate is seen here (the serving
context asks for a client certificate, ``CERT_OPTIONAL``, and trusts only the cluster CA:
:meth:`setpoint.pki.ServerCredentials.ssl_context`), including its validity period. What is
left is what upstream's ``x509.Verifier`` also asks: the certificate must be meant for
client authentication (extended key usage ``clientAuth``), so that a serving certificate the
same CA signed cannot log in as the name of a host; and it must name a user.

Parsed certificates are remembered by their DER bytes (a keep-alive connection presents the
same one on every request, and parsing costs tens of microseconds).
"""

from __future__ import annotations

import functools
import ssl

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from setpoint.api.auth.user import UserInfo
from setpoint.pki import certificate_user


def peer_certificate(request: web.BaseRequest) -> bytes | None:
    """The DER certificate the TLS client of ``request`` presented (and the TLS layer
    verified), else None."""
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return der or None


@functools.lru_cache(maxsize=4096)
def user_of_certificate(der: bytes) -> UserInfo | None:
    """The user a verified client certificate names, or None when it is not a client
    certificate or names nobody."""
    try:
        cert = x509.load_der_x509_certificate(der)
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    if (
        ExtendedKeyUsageOID.CLIENT_AUTH not in usages
        and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages
    ):
        return None
    name, groups = certificate_user(cert)
    if not name:
        return None
    return UserInfo(name, groups)


class ClientCertificates:
    """The identity a verified client certificate names (CN the user, O the groups)."""

    async def authenticate(self, request: web.BaseRequest) -> UserInfo | None:
        der = peer_certificate(request)
        return user_of_certificate(der) if der is not None else None
