"""slixmpp as the independent XMPP peer of host tests: one account logged in, its event loop in a thread.

    peer = Controller(server)                 # "controller@<domain>/desk", STARTTLS against the test CA
    peer.send_message(jid, "hello")
    stanza = peer.next_from(peer.messages, jid)
    peer.stop()
"""

import asyncio
import queue
import threading
import time

import pytest

WAIT = 10.0  # seconds for any one exchange
POLL_MS = 20


class Controller:
    """An account (default "controller") logged in with slixmpp, its event loop in a background thread."""

    def __init__(self, server, user="controller", resource="desk"):
        import slixmpp

        self.slixmpp = slixmpp
        self.messages = queue.Queue()
        self.presences = queue.Queue()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.xmpp = self.call(self._start(server, user, resource), 20)
        self.jid = str(self.xmpp.boundjid.full)

    async def _start(self, server, user, resource):
        xmpp = self.slixmpp.ClientXMPP(server.jid(user) + "/" + resource, server.accounts[user])
        xmpp.ca_certs = server.ca_path
        xmpp.enable_direct_tls = False
        xmpp.enable_starttls = True
        xmpp.enable_plaintext = False
        for plugin in ("xep_0030", "xep_0092", "xep_0199"):
            xmpp.register_plugin(plugin)
        started = self.loop.create_future()
        xmpp.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        xmpp.add_event_handler("failed_auth", lambda _: started.done() or started.set_exception(
            AssertionError("controller login failed")))
        xmpp.add_event_handler("message", self.messages.put)
        xmpp.add_event_handler("presence", self.presences.put)
        xmpp.connect("127.0.0.1", server.c2s_port)
        await asyncio.wait_for(started, 15)
        return xmpp

    def call(self, coroutine, timeout=WAIT):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def submit(self, coroutine):
        """Start coroutine in the loop; returns a concurrent.futures.Future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def send_message(self, to, body):
        self.loop.call_soon_threadsafe(lambda: self.xmpp.send_message(mto=to, mbody=body, mtype="chat"))

    def send_presence(self, to=None, status=None, type=None):
        """A presence: directed when ``to`` is given, else broadcast (the initial presence)."""
        def send():
            if type is not None:
                self.xmpp.send_presence(pto=to, ptype=type)
            else:
                self.xmpp.send_presence(pto=to, pstatus=status)

        self.loop.call_soon_threadsafe(send)

    def nothing_from(self, box, sender, timeout):
        """True if nothing from ``sender`` arrives in ``box`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                stanza = box.get(timeout=0.05)
            except queue.Empty:
                continue
            if str(stanza["from"]) == sender:
                return False
        return True

    def next_from(self, box, sender, client=None, timeout=WAIT):
        """The next stanza in box from ``sender``, polling ``client`` meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if client is not None:
                client.poll(POLL_MS)
            try:
                stanza = box.get(timeout=0 if client is not None else 0.05)
            except queue.Empty:
                continue
            if str(stanza["from"]) == sender:
                return stanza
        pytest.fail("nothing from %s within %.0f s" % (sender, timeout))

    def wait(self, future, client=None, timeout=WAIT):
        """The result of a submitted future, polling the device client meanwhile."""
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                pytest.fail("timed out after %.0f s" % timeout)
            if client is not None:
                client.poll(POLL_MS)
            else:
                time.sleep(0.01)
        return future.result()

    # Queries the device must answer.

    async def ping(self, jid):
        return await self.xmpp.plugin["xep_0199"].ping(jid, timeout=WAIT)

    async def disco_info(self, jid):
        result = self.xmpp.plugin["xep_0030"].get_info(jid=jid, local=False, cached=False, timeout=WAIT)
        if asyncio.isfuture(result) or asyncio.iscoroutine(result):
            result = await result
        info = result["disco_info"]
        return sorted(info["features"]), [tuple(identity[:2]) for identity in info["identities"]]

    async def version(self, jid):
        result = await self.xmpp.plugin["xep_0092"].get_version(jid, timeout=WAIT)
        return result["software_version"]["name"], result["software_version"]["version"]

    async def unknown_iq(self, jid):
        iq = self.xmpp.make_iq_get(queryxmlns="urn:example:unknown", ito=jid)
        try:
            await iq.send(timeout=WAIT)
        except self.slixmpp.exceptions.IqError as error:
            return error.iq["error"]["type"], error.iq["error"]["condition"]
        return "result", None

    def stop(self):
        async def disconnect():
            await self.xmpp.disconnect(wait=0.5)

        try:
            self.call(disconnect(), 5)
        except Exception:
            pass
        finally:
            pending = asyncio.run_coroutine_threadsafe(self._cancel_tasks(), self.loop)
            try:
                pending.result(5)
            except Exception:
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    async def _cancel_tasks(self):
        tasks = [task for task in asyncio.all_tasks(self.loop) if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
