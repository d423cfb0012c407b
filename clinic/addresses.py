"""Where the server may connect when a user names the place: never inside the clinic's network.

A webhook URL (or any address a user gives) is checked before it is saved and again right
before each connection, because what a name resolves to can change between the two (DNS
rebinding). `checked_addresses` resolves once and refuses when any address is internal;
`connect` then opens the socket to one of exactly those addresses, so the name is never
resolved a second time between the check and the connection. TLS and the Host header keep
the name: only the TCP connection is pinned (see clinic.webhooks.Poster).

Internal is what Python's `ipaddress` says is not globally reachable, or multicast or
reserved (loopback, RFC 1918, link-local and the cloud metadata address 169.254.169.254,
unique-local fc00::/7, 100.64.0.0/10, 0.0.0.0 and ::), also when an IPv4 address is
wrapped in IPv6 (::ffff:127.0.0.1, ::127.0.0.1, 6to4 2002::/16). Decimal, octal and hex
spellings of IPv4 (2130706433, 0177.0.0.1, 0x7f.1) are resolved by the system's resolver
like any name, so they are caught by what they resolve to.
"""

import ipaddress
import socket
import urllib.parse

# Names that never leave the machine or the site, whatever a resolver answers today
# (RFC 6761 localhost and invalid, RFC 6762 local, ICANN's private-use internal).
INTERNAL_NAMES = ("localhost", "localdomain", "local", "internal", "home.arpa", "invalid")


class AddressRefused(ValueError):
    """A URL or host the server will not connect to; `reason` is a sentence for the user,
    `kind` a short class for logs ("refused: internal address")."""

    def __init__(self, reason, kind="refused: internal address"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class HostNotFound(OSError):
    """The name does not resolve (now)."""


def is_internal(address):
    """True for an address a user must not make the server connect to (see the module's doc)."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return is_internal(embedded)
    return not ip.is_global or ip.is_multicast or ip.is_reserved


def has_internal_name(host):
    name = host.rstrip(".").lower()
    return any(name == suffix or name.endswith("." + suffix) for suffix in INTERNAL_NAMES)


def is_literal(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def checked_addresses(host, port, *, allow_private=False):
    """Resolve `host` once; the addresses to connect to, as getaddrinfo gives them.

    Raises AddressRefused when any of them is internal (one internal record among public
    ones is enough: the client may pick it), HostNotFound when the name does not resolve.
    """
    if not allow_private and has_internal_name(host):
        raise AddressRefused(f"{host} names an internal host; only public addresses are allowed.")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise HostNotFound(f"{host} could not be resolved.") from error
    if not allow_private:
        for *_, sockaddr in found:
            if is_internal(sockaddr[0]):
                raise AddressRefused(
                    f"{host} {'is' if is_literal(host) else 'resolves to'} an internal address "
                    "(loopback, private, link-local or reserved); only public addresses are allowed."
                )
    return found


def connect(addresses, timeout, source_address=None):
    """A TCP socket to the first of `addresses` (from checked_addresses) that answers."""
    last_error = None
    for family, kind, proto, _, sockaddr in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as error:
            sock.close()
            last_error = error
    raise last_error or HostNotFound("no address to connect to")


def check_url(url, *, allow_private=False, resolve=True):
    """Refuse a URL the server must not call: not http(s), credentials in it, no host, or a
    host that is or resolves to an internal address. Returns the parsed URL.

    With `resolve`, a name that does not resolve now is let through (it is checked again
    before each connection); an address literal is always checked.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise AddressRefused("This is not a valid URL.", kind="refused: bad URL") from error
    if parts.scheme not in ("http", "https"):
        raise AddressRefused("Use an http or https URL.", kind="refused: bad URL")
    if parts.username is not None or parts.password is not None:
        raise AddressRefused(
            "Leave credentials out of the URL; the receiver checks each request's signature instead.",
            kind="refused: bad URL",
        )
    if not parts.hostname:
        raise AddressRefused("The URL has no host.", kind="refused: bad URL")
    if resolve:
        try:
            checked_addresses(parts.hostname, port or default_port(parts.scheme), allow_private=allow_private)
        except HostNotFound:
            pass
    return parts


def default_port(scheme):
    return 443 if scheme == "https" else 80
