-- mod_xfed_guard: makes a test Prosody stop by itself.
--
-- xfed-tests starts Prosody with its stdin a pipe that only the test process
-- holds. When the test process goes away for any reason (end, panic,
-- SIGKILL, a CI timeout), the pipe reads EOF and Prosody shuts down, so no
-- test peer outlives its test. Besides, Prosody shuts down after
-- xfed_max_lifetime seconds whatever happens. It also logs when start-up is
-- complete, which is what the harness waits for.
--
-- Options (global section):
--   xfed_watch_stdin = true     -- only when stdin is that pipe (never /dev/null or a tty)
--   xfed_max_lifetime = 900     -- seconds
module:set_global();

local server = require "net.server";

local stopping = false;
local function stop(reason)
	if stopping then return end
	stopping = true;
	module:log("info", "xfed guard: %s, shutting down", reason);
	-- As mod_posix does for SIGTERM: shutdown must run in an async context.
	prosody.main_thread:run(function ()
		prosody.unlock_globals();
		prosody.shutdown(reason, 0);
		prosody.lock_globals();
	end);
end

if module:get_option_boolean("xfed_watch_stdin", false) then
	local watch;
	watch = server.watchfd(0, function ()
		-- Readable with nothing ever written means EOF: the test is gone.
		if watch then watch:close(); watch = nil; end
		stop("stdin closed (test process gone)");
	end);
end

-- The harness waits for this line: every host, listener, the admin socket
-- and the DNS resolver (net.unbound initialises on server-started) are up.
module:hook_global("server-started", function ()
	module:log("info", "xfed guard: server started");
end, -100);

local lifetime = module:get_option_number("xfed_max_lifetime", 900);
module:add_timer(lifetime, function ()
	stop(("lifetime limit of %ds reached"):format(lifetime));
end);
