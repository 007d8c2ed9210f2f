"""Devices on a 2-node ejabberd cluster (Mnesia, join_cluster): one cluster for the module.

A fleet split over the two nodes; a command from a controller logged in at node 1 answered by a device
at node 2; a device whose link to node 1 is cut resumes its XEP-0198 session at node 2 with nothing lost,
once through a link emulator pointed at node 2 before the cut, once by its own list of both nodes
(xmpp.servers, which provision writes for a cluster).
"""

import os
import re
import signal
import time
import types

import pytest

from ejabberdrun import start_ejabberd
from host_tools.fleet import Fleet, create_accounts
from host_tools.linkemu import LinkEmulator, Profile
from test_resilience import Controller as CommandController, Device, device_settings

RUNTIMES = ("micropython", "cpython")
FLEET_DEVICES = 6
WAIT = 30.0
RECONNECT_DELAY_MS = 1000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    server = start_ejabberd(tmp_path_factory.mktemp("cluster"), nodes=2)
    yield server
    server.stop()


def wait_until(predicate, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.1)


def test_two_nodes_in_one_cluster(cluster):
    names = [node.name for node in cluster.node_list]
    assert sorted(cluster.cluster()) == sorted(names) and len(set(names)) == 2
    assert len({address for address in cluster.addresses()}) == 2
    # An account made at node 1 is known at node 2 (Mnesia replicates it).
    assert cluster.ctl("check_account", "device1", cluster.domain, node=cluster.node_list[1]) == ""


def test_fleet_split_over_two_nodes_and_a_command_across(cluster, tmp_path):
    users = ["fleet-%d" % number for number in range(1, FLEET_DEVICES + 1)]
    accounts = create_accounts(cluster, users + ["fleet-controller"])
    fleet = Fleet(cluster, accounts[:-1], accounts[-1], runtime="cpython", profile="perfect", interval_s=1,
                  work_dir=str(tmp_path))
    try:
        fleet.start()
        wait_until(lambda: fleet.snapshot()["online"] == FLEET_DEVICES, "every device online")
        wait_until(lambda: fleet.snapshot()["reporting"] == FLEET_DEVICES, "a report from every device")
        snapshot = fleet.snapshot()
        assert snapshot["online_per_server"] == [FLEET_DEVICES // 2, FLEET_DEVICES // 2]
        assert [link.stats["accepted"] for link in fleet.links] == [FLEET_DEVICES // 2] * 2
        assert [link.target[1] for link in fleet.links] == [port for _, port in cluster.addresses()]
        assert snapshot["reconnects"] == 0 and snapshot["errors"] == {}

        # The observer is at node 1; device 2 (index 1) went through the second link, to node 2.
        on_node_2 = cluster.jid(users[1]) + "/sim"
        fleet.observer.command(on_node_2, "status")
        wait_until(lambda: any(sender == on_node_2 for _, sender, _ in fleet.observer.replies),
                   "the answer of the device at node 2")
    finally:
        fleet.stop()


def online_through_node_1(runtime, cluster, mpy_lib, running, tmp_path, resource, servers=None):
    """(link, controller, device, full JID): a device online through a link emulator to node 1 that has
    answered one command from a controller logged in at node 2, which keeps running. ``servers(link)``: the
    device's own server list (xmpp.servers), if it has one."""
    node_1, node_2 = cluster.addresses()
    link = LinkEmulator(target=node_1, profile=Profile(), seed=7)
    link.start()
    running.append(link)
    at_node_2 = types.SimpleNamespace(jid=cluster.jid, accounts=cluster.accounts, c2s_port=node_2[1], tls=True,
                                      ca_path=cluster.ca_path, ca_der_path=cluster.ca_der_path)
    controller = CommandController(at_node_2)
    running.append(controller)
    # A device that comes back within a few hundred ms can meet a race in ejabberd 23.01: node 2 resumes
    # the session, then closes it as "Replaced by new connection" while node 1's record of it is still
    # there (see docs/servers.md). A board's backoff waits longer than that before it reconnects.
    settings = device_settings(cluster, link, resource=resource, backoff_initial_ms=RECONNECT_DELAY_MS,
                               backoff_max_ms=RECONNECT_DELAY_MS * 2)
    if servers is not None:
        settings["servers"] = servers(link)
    if runtime == "micropython":
        settings["lib"] = mpy_lib
    device = Device(runtime, tmp_path, **settings)
    running.append(device)
    device.wait_for("STATE online fresh")
    full_jid = cluster.jid("device1") + "/" + resource
    # Node 2 learns of the new session from node 1 a moment later (Mnesia replicates it): until then a
    # stanza from node 2 to the full JID is lost. Reports are not counted as commands.
    wait_until(lambda: controller.report(full_jid, cluster.jid("device1"), timeout=5) is not None,
               "the device reachable from node 2")
    controller.send(full_jid, "cmd 0")
    assert controller.report(full_jid, cluster.jid("device1"))["commands"] == 1
    return link, controller, device, full_jid


def resumed_with_nothing_lost(cluster, controller, device, full_jid):
    """After a cut with "cmd 1" sent meanwhile: the device resumed and answered both commands once, in order."""
    device.wait_for("STATE offline")
    device.wait_for("STATE online resumed")
    report = controller.report(full_jid, cluster.jid("device1"))
    assert report["commands"] == 2 and report["duplicates"] == 0 and report["in_order"], report
    assert report["stats"]["resumed"] == 1, report
    controller.send(full_jid, "quit")
    assert device.done()["unacked"] == 0
    return report


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_device_cut_from_node_1_resumes_on_node_2(runtime, cluster, mpy_lib, running, tmp_path):
    link, controller, device, full_jid = online_through_node_1(runtime, cluster, mpy_lib, running, tmp_path,
                                                               "move-" + runtime)
    accepted = link.stats["accepted"]
    link.target = cluster.addresses()[1]  # where the device's next connection goes
    assert link.cut() == 1
    controller.send(full_jid, "cmd 1")  # queued in the session, which node 1 still holds
    report = resumed_with_nothing_lost(cluster, controller, device, full_jid)
    assert link.stats["accepted"] == accepted + 1
    assert report["stats"]["lost"] == 1


def test_status_of_a_cluster_with_a_node_down_and_stop(tmp_path):
    from clirun import cli
    from host_tools.engines.base import group_alive

    server = start_ejabberd(tmp_path / "state", nodes=2, accounts=())
    try:
        node_2 = server.node_list[1]
        os.killpg(node_2.pid, signal.SIGTERM)
        wait_until(lambda: not group_alive(node_2.pid), "node 2 gone")
        status = cli("server", "status", "--state", server.state_dir)
        assert status.returncode == 1, status.stdout
        assert status.stdout.startswith("running: 1 of 2 nodes (node 1 pid %d)" % server.node_list[0].pid)
        assert re.search(r"^  node 2 +%s, .*, stopped$" % re.escape(node_2.name), status.stdout, re.MULTILINE)
        stopped = cli("server", "stop", "--state", server.state_dir)
        assert stopped.returncode == 0 and "stopped ejabberd: 2 nodes (node 1 pid" in stopped.stdout
        assert not server.is_running() and not group_alive(server.node_list[0].pid)
    finally:
        server.stop()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_device_with_both_nodes_fails_over_and_resumes(runtime, cluster, mpy_lib, running, tmp_path):
    """The device knows both nodes (xmpp.servers); node 1 goes away and the stream resumes at node 2."""
    node_2 = cluster.addresses()[1]
    link, controller, device, full_jid = online_through_node_1(
        runtime, cluster, mpy_lib, running, tmp_path, "failover-" + runtime,
        servers=lambda link: ["127.0.0.1:%d" % link.port, "%s:%d" % node_2])
    link.stop()  # node 1 is out of reach: the connection ends, new ones are refused
    controller.send(full_jid, "cmd 1")  # queued in the session, which node 1 still holds
    resumed_with_nothing_lost(cluster, controller, device, full_jid)


def test_provisioned_configs_name_every_node(cluster, tmp_path):
    import json

    from clirun import cli

    from xmpp_lite.client import Client
    from xmpp_lite.config import check

    out = tmp_path / "out"
    result = cli("provision", "--state", cluster.state_dir, "--count", "1", "--prefix", "nodes-", "--out", out)
    assert result.returncode == 0, result.stderr
    with open(out / "nodes-1" / "config.json") as f:
        xmpp = check(json.load(f))["xmpp"]
    assert xmpp["server"] is None
    assert xmpp["servers"] == ["%s:%d" % address for address in cluster.addresses()]
    client = Client(xmpp["jid"], xmpp["password"], servers=xmpp["servers"], ca=str(out / "nodes-1" / "ca.der"))
    assert client.connect(15000).startswith("nodes-1@")
    client.close()
