"""DestinationGuard: judge every destination and pin the connection to the IP that was judged.

- CONNECT: decided in ``http_connect``; ``request.host`` becomes the checked IP so mitmproxy
  connects there (no OS resolution, no rebinding window). Requests inside the tunnel must name
  the same host. A refused CONNECT to an intercepted destination is accepted, and answered
  inside TLS (``destinations/refusals.py``).
- Plain HTTP: decided in ``requestheaders``; ``request.host`` becomes the IP and the ``Host``
  header keeps the name. Upstream keep-alive keeps working because the pool key is the IP.
- TLS to the receiver always carries the checked name as SNI and is verified against it.
- Transparent listeners (connections the kernel redirected): the name is the ``Host`` header
  (or the TLS SNI, ``TransparentTls``), the port the one dialled; the address the sender
  dialled is judged too (``decide.judge_dialled``) and never connected to unless it is the
  one the guard pinned.
- ``server_connect`` re-checks the literal IP as the last guard.
Every hook fails closed: an exception is a denial, never a pass.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import OrderedDict

from mitmproxy import connection, http, tls
from mitmproxy.net.http import url
from mitmproxy.proxy import server_hooks

from hookwall.core.denials import Denial, Reason
from hookwall.core.headers import UPGRADE
from hookwall.destinations import decide as guard
from hookwall.destinations.addresses import IPAddress
from hookwall.destinations.hostname import InvalidHost, canonicalize_host
from hookwall.destinations.refusals import answered_at
from hookwall.destinations.tunnelcheck import pinned_after_reload, sender_after_reload, tokens_kept
from hookwall.flow.respond import deny, refuse_inside_tls
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import FlowState, TunnelState, start_state
from hookwall.flow.transparent import is_transparent, original_destination
from hookwall.policy import Settings

logger = logging.getLogger(__name__)

_APPROVED_MAX = 50_000


class DestinationGuard:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tunnels: dict[str, TunnelState] = {}  # client connection id -> its CONNECT
        # (ip, port) -> settings of the decision that approved it: the server_connect re-check
        # judges the IP again by their network rules, the connect timeout comes from them.
        self._approved: OrderedDict[tuple[IPAddress, int], Settings] = OrderedDict()
        # (client id, ip, port) -> receiver name, for SNI on upgraded plain-HTTP requests.
        self._sni: dict[tuple[str, IPAddress, int], str] = {}

    # -- CONNECT -------------------------------------------------------------------------
    async def http_connect(self, flow: http.HTTPFlow) -> None:
        state = self._start(flow)
        if state.denial is not None or state.self_answered:  # refused, or hookwall.invalid
            return
        try:
            decision = await self._decide(flow, flow.request.host, flow.request.port, state)
            if decision.allowed:
                assert decision.pinned_ip is not None
                flow.request.host = str(decision.pinned_ip)
                self.tunnels[flow.client_conn.id] = TunnelState(
                    decision,
                    state.policy,
                    state.request_id,
                    sender=state.sender,
                    would_deny=tuple(state.would_deny),
                )
            else:
                self._refuse_inside_tls(flow, state, decision)
        except Exception as exc:
            self._fail(flow, state, exc)

    def client_disconnected(self, client: connection.Client) -> None:
        self.tunnels.pop(client.id, None)
        for key in [k for k in self._sni if k[0] == client.id]:
            del self._sni[key]

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        """Passthrough rules tunnel the bytes untouched (the address was checked and pinned)."""
        tunnel = self.tunnels.get(data.context.client.id)
        if tunnel is not None and tunnel.passthrough:
            data.ignore_connection = True

    def tls_start_server(self, data: tls.TlsData) -> None:
        """The receiver is verified against the name we checked, whatever SNI the client sent."""
        server = data.context.server
        name = self._checked_name(data.context.client.id, server.address)
        if name is not None and _as_ip(name) is None:
            server.sni = name

    def _checked_name(self, client_id: str, address: tuple[str, int] | None) -> str | None:
        ip = _as_ip(address[0]) if address else None
        if ip is None or address is None:
            return None
        tunnel = self.tunnels.get(client_id)
        if tunnel is not None and tunnel.decision.pinned_ip == ip:
            return tunnel.decision.host
        return self._sni.get((client_id, ip, address[1]))

    # -- refusals answered inside TLS (destinations/refusals.py) -------------------------------
    def _refuse_inside_tls(self, flow: http.HTTPFlow, state: FlowState, d: guard.Decision) -> None:
        """A refused CONNECT to an intercepted destination is accepted instead: hookwall speaks
        TLS for the name with its own certificate, and every request inside is answered with
        this refusal (``_answer_refused_tunnel``). The CONNECT keeps its verdict; no address is
        approved, so nothing can be connected upstream. A transparent listener's TLS connection
        is refused the same way (``TransparentTls`` judged it as this CONNECT): its sender
        sent no CONNECT that could carry a refusal at all."""
        if state.denial is None:
            return
        if answered_at(d, (state.policy or self.runtime.policy).defaults) != "inside-tls":
            return
        refuse_inside_tls(flow, state, state.denial)
        self.tunnels[flow.client_conn.id] = TunnelState(
            d,
            state.policy,
            state.request_id,
            sender=state.sender,
            would_deny=tuple(state.would_deny),
            refusal=state.denial,
        )

    @staticmethod
    def _answer_refused_tunnel(flow: http.HTTPFlow, state: FlowState, t: TunnelState) -> None:
        """A request inside a refused tunnel: the CONNECT's refusal, with the CONNECT's request
        id, whatever it names (its Host is not judged: nothing goes anywhere), under the policy
        the CONNECT was judged by (a reload since does not reopen it: the sender's next CONNECT
        is judged afresh). Then the connection closes."""
        assert t.refusal is not None
        state.decision = t.decision
        name = t.decision.host
        state.original_url = _url(flow.request.scheme, name, t.decision.port, flow.request.path)
        state.close_after("destination-refused")
        deny(flow, state, t.refusal)

    # -- plain HTTP and requests inside tunnels ---------------------------------------------
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        tunnel = self.tunnels.get(flow.client_conn.id)
        state = self._start(flow, tunnel)
        if state.denial is not None or state.self_answered:  # refused, or hookwall.invalid
            return
        try:
            if tunnel is not None and tunnel.refusal is not None:
                self._answer_refused_tunnel(flow, state, tunnel)
                return
            if tunnel is not None and tunnel.policy not in (None, self.runtime.policy):
                await self._follow_reload(flow, state, tunnel)
                if state.denial is not None:
                    return
            if tunnel is not None:
                self._check_inside_tunnel(flow, state, tunnel)
            elif is_transparent(flow.client_conn):
                await self._pin_redirected_request(flow, state)
            else:
                await self._pin_plain_request(flow, state)
        except Exception as exc:
            self._fail(flow, state, exc)

    async def _follow_reload(self, flow: http.HTTPFlow, state: FlowState, t: TunnelState) -> None:
        """The policy was reloaded since this tunnel's CONNECT: its next request follows the new
        one. The CONNECT's host, port and sender are judged again; the tunnel is adopted when the
        current policy still allows the address it is connected to, else this request is refused
        and the connection closes, so the sender's next CONNECT is judged afresh. When the
        sender's credentials changed, the connection closes after this response: the sender
        authenticates again on a new CONNECT."""
        policy, old = self.runtime.policy, t.decision
        state.original_url = _url(flow.request.scheme, old.host, old.port, flow.request.path)
        before = t.policy.senders.get(t.sender) if t.policy and t.sender else None
        now = policy.senders.get(t.sender) if t.sender else None
        if (t.sender is None and policy.senders) or (t.sender and not tokens_kept(before, now)):
            state.close_after("policy-reloaded")
        if (t.sender is None and policy.senders) or (t.sender and now is None):
            message = "the policy changed: open a new connection with valid proxy credentials"
            deny(flow, state, Denial(Reason.AUTH_REQUIRED, message))
            return
        peer = flow.client_conn.peername
        refusal = sender_after_reload(now, policy.senders, t.sender, str(peer[0]) if peer else None)
        if refusal is not None and refusal.reason is Reason.SENDER_DENIED:  # its new clients
            state.close_after("policy-reloaded")
            deny(flow, state, refusal)
            return
        state.policy = policy
        decision = await self._decide(flow, old.host, old.port, state)
        pinned = old.pinned_ip
        if not decision.allowed or decision.settings is None or pinned is None:
            state.close_after("policy-reloaded")
            return
        refusal = pinned_after_reload(decision.settings, pinned, old.host)
        if refusal is not None:
            state.close_after("policy-reloaded")
            deny(flow, state, refusal)
            return
        self._approve(pinned, old.port, decision.settings)
        t.follow(decision, policy)

    def _check_inside_tunnel(self, flow: http.HTTPFlow, state: FlowState, t: TunnelState) -> None:
        state.decision = t.decision
        name = t.decision.host
        state.original_url = _url(flow.request.scheme, name, t.decision.port, flow.request.path)
        host_header = flow.request.host_header
        try:
            header_host = url.parse_authority(host_header or "", check=True)[0]
            same = canonicalize_host(header_host).text == name
        except (ValueError, InvalidHost):
            same = False
        if not same:
            deny(
                flow,
                state,
                Denial(
                    Reason.HOST_MISMATCH,
                    f"the Host header {host_header!r} does not name the CONNECT target {name}; "
                    "send requests for another host through their own CONNECT",
                ),
            )

    async def _pin_redirected_request(self, flow: http.HTTPFlow, state: FlowState) -> None:
        """A request on a transparent listener: mitmproxy made its host the dialled address;
        the name is the ``Host`` header's (none: the dialled address is the host judged), the
        port the one dialled. Then it is pinned like any plain request."""
        request = flow.request
        dialled = original_destination(flow.client_conn)
        if dialled is None:
            raise RuntimeError("a transparent connection without its original destination")
        port = dialled[1]
        name = dialled[0]
        if request.host_header:
            try:
                header_host, header_port = url.parse_authority(request.host_header, check=True)
            except ValueError:
                message = "the Host header is not a valid host[:port]"
                deny(flow, state, Denial(Reason.INVALID_HOST, message))
                return
            if header_port is not None and header_port != port:
                message = (
                    f"the Host header names port {header_port}, but the connection was made "
                    f"to port {port}"
                )
                deny(flow, state, Denial(Reason.HOST_MISMATCH, message))
                return
            name = header_host
        request.host, request.port = name, port
        await self._pin_plain_request(flow, state)

    async def _pin_plain_request(self, flow: http.HTTPFlow, state: FlowState) -> None:
        request = flow.request
        upgrade_asked = request.headers.pop(UPGRADE, "").strip().lower()
        state.original_url = _url(request.scheme, request.host, request.port, request.path)
        if upgrade_asked not in ("", "https"):
            deny(flow, state, Denial(Reason.BAD_REQUEST, f"{UPGRADE} must be 'https'"))
            return
        decision = await self._decide(flow, request.host, request.port, state)
        if not decision.allowed:
            return
        assert decision.pinned_ip is not None and decision.settings is not None
        if request.scheme == "http" and (decision.settings.upgrade or upgrade_asked):
            port = 443 if request.port == 80 else request.port
            if port not in decision.settings.network.ports:
                allowed = decision.settings.network.ports
                message = f"upgrading to https needs port {port}, not allowed (allowed: {allowed})"
                deny(flow, state, Denial(Reason.PORT_DENIED, message))
                return
            request.scheme, request.port, state.upgraded = "https", port, True
            self._approve(decision.pinned_ip, port, decision.settings)
        if request.scheme == "https":  # upgraded, or an absolute-form https:// request
            self._sni[(flow.client_conn.id, decision.pinned_ip, request.port)] = decision.host
        # RFC 9112 3.2.2: a proxy replaces Host with the request-target's authority.
        request.host = str(decision.pinned_ip)
        request.host_header = authority(request.scheme, decision.host, request.port)

    # -- last guard ---------------------------------------------------------------------------
    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Refuse any upstream connection to an address that no decision approved."""
        try:
            address = data.server.address
            ip = _as_ip(address[0]) if address else None
            approved = self._approved.get((ip, address[1])) if ip and address else None
            network = approved.network if approved else None
            if network is None or ip is None or not network.check(ip).allowed:
                data.server.error = f"hookwall refused to connect to unapproved address {address!r}"
        except Exception as exc:
            data.server.error = f"hookwall refused the connection ({type(exc).__name__}: {exc})"

    def connect_timeout(self, host: str, port: int) -> float:
        """The connect timeout of the destination that approved this address."""
        ip = _as_ip(host)
        settings = self._approved.get((ip, port)) if ip is not None else None
        return (settings or self.runtime.policy.defaults).timeouts.connect

    # -- helpers -------------------------------------------------------------------------------
    def _start(self, flow: http.HTTPFlow, tunnel: TunnelState | None = None) -> FlowState:
        return start_state(flow, self.runtime.policy, tunnel)

    async def _decide(
        self, flow: http.HTTPFlow, host: str, port: int, state: FlowState
    ) -> guard.Decision:
        """Run the shared decision; approve the pinned IP, or answer the flow with the denial."""
        policy = state.policy or self.runtime.policy
        decision = await guard.decide(
            host,
            port,
            policy,
            self.runtime.resolver,
            self_addresses=self.runtime.self_addresses,
            sender=state.sender,
        )
        dialled = original_destination(flow.client_conn)
        if dialled is not None:  # a redirected connection: what it dialled is judged too
            dialled_ip = _as_ip(dialled[0])
            if dialled_ip is None:
                raise RuntimeError(f"a transparent connection dialled {dialled[0]!r}")
            decision = guard.judge_dialled(decision, dialled_ip, self.runtime.self_addresses)
        state.decision = decision
        if decision.allowed:
            assert decision.pinned_ip is not None and decision.settings is not None
            self._approve(decision.pinned_ip, port, decision.settings)
        else:
            deny(flow, state, Denial(decision.reason or Reason.INTERNAL_ERROR, decision.message))
        return decision

    def _approve(self, ip: IPAddress, port: int, settings: Settings) -> None:
        self._approved[(ip, port)] = settings
        self._approved.move_to_end((ip, port))
        while len(self._approved) > _APPROVED_MAX:
            self._approved.popitem(last=False)

    @staticmethod
    def _fail(flow: http.HTTPFlow, state: FlowState, exc: Exception) -> None:
        logger.exception("guard failed; denying")
        deny(
            flow,
            state,
            Denial(
                Reason.INTERNAL_ERROR,
                f"hookwall failed while judging this request ({type(exc).__name__})",
            ),
        )


def _as_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def authority(scheme: str, host: str, port: int) -> str:
    """``host[:port]`` as it belongs in a URL or Host header (IPv6 bracketed, default port out)."""
    shown = f"[{host}]" if ":" in host else host
    return shown if url.default_port(scheme) == port else f"{shown}:{port}"


def _url(scheme: str, host: str, port: int, path: str) -> str:
    return f"{scheme}://{authority(scheme, host, port)}{path}"
