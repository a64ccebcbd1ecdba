"""The python-socketio client against ferrio: connect, acks, binary, rooms through the hub."""

import queue
import time

import pytest
import socketio

WAIT = 5


class Client:
    """A python-socketio client whose received events land in queues (one per event name)."""

    def __init__(self, server, transport, namespace="/", auth=None, record=()):
        self.sio = socketio.Client(reconnection=False)
        self.ns = namespace
        self.queues = {}
        self.disconnects = queue.Queue()
        for event in ("welcome", *record):
            self._record(event)

        @self.sio.on("disconnect", namespace=namespace)
        def _disconnect(*reason):
            self.disconnects.put(reason[0] if reason else None)

        self.sio.connect(server.url, transports=[transport], namespaces=[namespace], auth=auth,
                         wait_timeout=WAIT)

    def _record(self, event):
        q = self.queues.setdefault(event, queue.Queue())
        self.sio.on(event, lambda *args: q.put(list(args)), namespace=self.ns)

    def next(self, event, timeout=WAIT):
        try:
            return self.queues[event].get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {event!r} event within {timeout} s") from None

    def nothing(self, event, wait=0.2):
        time.sleep(wait)
        assert self.queues[event].empty(), f"unexpected {event!r}: {self.queues[event].get()}"

    def call(self, event, *args):
        return self.sio.call(event, args if len(args) != 1 else args[0], namespace=self.ns, timeout=WAIT)

    def emit(self, event, *args):
        self.sio.emit(event, args if len(args) != 1 else args[0], namespace=self.ns)

    def sid(self):
        return self.sio.get_sid(self.ns)

    def close(self):
        self.sio.disconnect()


@pytest.fixture
def clients(server):
    made = []

    def make(transport="websocket", **kw):
        c = Client(server, transport, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.close()
        except Exception:  # already disconnected by the test
            pass


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_connect_receives_welcome_with_auth(clients, transport):
    c = clients(transport, auth={"token": "py", "n": [1, 2]})
    welcome = c.next("welcome")[0]
    assert welcome == {"id": c.sid(), "ns": "/", "auth": {"token": "py", "n": [1, 2]}}
    assert len(c.sid()) == 20
    assert c.sio.transport() == transport


def test_connect_to_second_namespace(clients):
    c = clients("websocket", namespace="/admin")
    assert c.next("welcome")[0]["ns"] == "/admin"


def test_unknown_namespace_is_refused(server):
    sio = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(server.url, namespaces=["/nope"], transports=["websocket"], wait_timeout=WAIT)
    sio.disconnect()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_call_returns_the_ack(clients, transport):
    c = clients(transport)
    assert c.call("echo-ack", "one") == "one"
    assert c.call("echo-ack", "a", 1, {"k": [True, None]}) == ("a", 1, {"k": [True, None]})


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_binary_round_trips(clients, transport):
    c = clients(transport, record=("echo",))
    blob = bytes(range(256))
    c.emit("echo", blob)
    assert c.next("echo") == [blob]
    nested = {"name": "f", "parts": [b"\x00\x01", {"deep": b"\xff" * 1000}], "n": 3}
    c.emit("echo", nested, b"tail")
    assert c.next("echo") == [nested, b"tail"]
    assert c.call("echo-ack", b"\x01\x02", {"x": b"\x03"}) == (b"\x01\x02", {"x": b"\x03"})


def test_server_emits_with_ack_and_gets_the_answer(clients):
    c = clients("websocket")
    c.sio.on("question", lambda a, b: ("answer", {"to": a}, b), namespace="/")
    reply = c.call("server-ack", {"event": "question", "args": ["q", b"\x07"], "timeout_ms": 3000})
    assert reply == {"ok": True, "args": ["answer", {"to": "q"}, b"\x07"]}


def test_server_ack_times_out_when_the_answer_is_late(clients):
    c = clients("websocket")
    # python-socketio always acks when its handler returns, so answer too late instead
    c.sio.on("slow", lambda: time.sleep(0.8) or "late", namespace="/")
    started = time.monotonic()
    reply = c.call("server-ack", {"event": "slow", "args": [], "timeout_ms": 300})
    assert reply == {"ok": False, "error": "timeout"}
    assert 0.25 <= time.monotonic() - started < 0.8
    time.sleep(0.7)  # the late ack arrives and must be ignored
    assert c.call("echo-ack", "after") == "after"


def test_server_disconnect_is_seen_by_the_client(clients):
    c = clients("websocket")
    c.emit("server-disconnect")
    assert c.disconnects.get(timeout=WAIT) in ("server disconnect", None)


def test_rooms_through_the_hub(clients):
    record = ("join-room", "leave-room", "chat", "delete-room")
    a = clients("websocket", record=record)
    b = clients("polling", record=record)
    room = f"py-room-{time.time_ns()}"
    assert a.call("join-room", room) == {"ok": True, "room": room, "size": 1}
    assert b.call("join-room", room) == {"ok": True, "room": room, "size": 2}
    assert a.next("join-room") == [{"room": room, "id": b.sid()}]
    b.nothing("join-room")

    members = a.call("room-members", room)
    assert members["ok"] is True and sorted(members["members"]) == sorted([a.sid(), b.sid()])
    listed = a.call("list-rooms")
    assert {"room": room, "size": 2} in listed["rooms"]

    assert a.call("to-room", room, "chat", "hello", b"\x00bin", {"k": b"\x01"}) == {"ok": True}
    assert b.next("chat") == ["hello", b"\x00bin", {"k": b"\x01"}]
    a.nothing("chat")

    assert b.call("leave-room", room) == {"ok": True, "room": room, "size": 1}
    assert a.next("leave-room") == [{"room": room, "id": b.sid()}]

    assert b.call("delete-room", room) == {"ok": True, "room": room}
    assert a.next("delete-room") == [{"room": room}]
    b.nothing("delete-room")
    assert a.call("room-members", room) == {"ok": True, "room": room, "members": []}


def test_malformed_hub_command_is_refused_not_fatal(clients):
    c = clients("websocket")
    reply = c.call("join-room", 42)
    assert reply["ok"] is False and isinstance(reply["error"], str)
    reply = c.call("to-room", "r", "disconnect")
    assert reply["ok"] is False
    assert c.sio.connected
    assert c.call("echo-ack", "still") == "still"
