"""The bridge acknowledges reminders for WebSocket clients that do not, once it wrote them.

The mesh moves a device's reminder cursor only on an acknowledgement. A client
whose hello set `reminder_acks` (the SDK, the console) sends `reminder_ack
{cursor}` after it showed a trigger. A PeroLink v1 client sends nothing, and
"the hub queued it" is not "the device got it": a core killed in between
would never send it again. So the bridge attaches every client to the hub
with `reminder_acks` set and, for a client that does not ack, acknowledges
each `reminder_trigger` itself right after the connection's writer wrote the
frame to the socket (websockets' `send` returned). Killed before the write,
nothing is acknowledged and the trigger comes again at the next attach; killed
between the write and the ack, it comes twice (the client drops a cursor it
has seen): at least once, never lost. The same holds whether the bridge
reaches the hub in-process or over HubService.Attach.
"""

from __future__ import annotations

from collections.abc import Callable

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.wire import envelopes as env

REMINDER_TRIGGER = "reminder_trigger"
REMINDER_ACK = "reminder_ack"


class ReminderAcks:
    """One connection's part: whether its client acks, and the ack to send once a trigger was written."""

    def __init__(self, send_to_hub: Callable[[gw.Envelope], None]) -> None:
        self._send = send_to_hub  # hands an envelope from the node to the hub (must not block)
        self.client_acks = False

    def attach_hello(self, hello: gw.Envelope) -> gw.Envelope:
        """The hello the hub gets: the client's, promising acks (the bridge keeps the promise for it).
        A first envelope that is no hello goes as it is, for the hub to refuse precisely."""
        if hello.HasField("hello"):
            self.client_acks = hello.hello.reminder_acks
            hello.hello.reminder_acks = True
        return hello

    def receipt(self, envelope: gw.Envelope) -> Callable[[], None] | None:
        """What to call once `envelope` was written to the client: the ack, for a client that sends none."""
        if self.client_acks or envelope.request.action_name != REMINDER_TRIGGER:
            return None
        cursor = envelope.request.params.get("cursor", "")
        if not cursor.isdigit():
            return None
        # No envelope id: the hub answers a request only when it has one, so the client sees no reply.
        ack = gw.Envelope(source_id=envelope.target_id, target_id=env.MASTER,
                          request=gw.ActionRequest(action_name=REMINDER_ACK, params={"cursor": cursor}))
        return lambda: self._send(ack)
