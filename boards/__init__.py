"""The board profiles (*.json), shipped with the host tools as host_tools.board_profiles; see host_tools/resources.py."""
