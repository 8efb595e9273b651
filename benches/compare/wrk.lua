-- wrk script for run.sh: prints one machine-readable RESULT line, and with
-- WRK_COOKIE_PREFIX set sends a session cookie never seen before on every
-- request (the cache-miss test): the prefix, then the thread's number and
-- a counter, joined by dashes. run.sh's prefix is NAME=<a value of PSU's
-- shape: CfDJ8 and base64url> plus digits and dashes, so every cookie
-- keeps that shape (the gateway answers 401, without asking PSU, to a
-- session value that is not CfDJ8 + base64url of at least 64 characters).

local prefix = os.getenv("WRK_COOKIE_PREFIX")
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end

if prefix then
   local counter = 0
   function request()
      counter = counter + 1
      local headers = {}
      for name, value in pairs(wrk.headers) do
         headers[name] = value
      end
      headers["Cookie"] = prefix .. tid .. "-" .. counter
      return wrk.format(nil, nil, headers)
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("RESULT %.1f %d %d %d %d\n",
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
      e.connect + e.read + e.write + e.status + e.timeout))
end
