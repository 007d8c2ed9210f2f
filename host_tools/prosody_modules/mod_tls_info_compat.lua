-- Gives Prosody 0.12 connections the conn:ssl_info() method that newer Prosody has.
--
-- The mod_sasl2 of Debian's prosody-modules was written for a newer Prosody: on an encrypted
-- stream it calls origin.conn:ssl_info() to look for channel bindings, and 0.12 has no such
-- method, so the stream features fail. This module runs first and adds the method, answering
-- with the TLS socket's own info() table (protocol, cipher), or nil.

local function ssl_info(conn)
	local sock = conn.conn;
	if sock and sock.info then
		return sock:info();
	end
end

module:hook("stream-features", function(event)
	local conn = event.origin.conn;
	if conn and conn.ssl_info == nil then
		conn.ssl_info = ssl_info;
	end
end, 100); -- before mod_sasl2's handler (priority 1)
