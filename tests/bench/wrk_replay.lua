-- Replays pre-signed webhooks: each wrk thread takes every Nth line of the file named by WEBHOOKS.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  bodies, signatures = {}, {}
  local n = 0
  for line in io.lines(os.getenv("WEBHOOKS")) do
    if n % tonumber(os.getenv("WRK_THREADS")) == id then
      local tab = line:find("\t")
      table.insert(signatures, line:sub(1, tab - 1))
      table.insert(bodies, line:sub(tab + 1))
    end
    n = n + 1
  end
  index = 0
end

function request()
  index = index % #bodies + 1
  return wrk.format("POST", os.getenv("WEBHOOK_PATH"), {
    ["Content-Type"] = "application/json",
    ["X-Kustomer-Webhook-Signature"] = signatures[index],
  }, bodies[index])
end
