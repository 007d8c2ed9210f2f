"""The device firmware (boot.py, main.py), shipped with the host tools as host_tools.firmware; see host_tools/resources.py."""
