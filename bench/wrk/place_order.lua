-- POST /api/v1/orders with 3 distinct products drawn at random from the seeded set, 1 to 3 of
-- each, as the customer whose access token is BENCH_TOKEN. BENCH_IDS_FILE: one id per line.
local ids = {}
local counter = 0
local headers = {}

function setup(thread)
   counter = counter + 1
   thread:set("seed", counter)
end

function init(args)
   math.randomseed(os.time() * 1000 + (seed or 0))
   for line in io.lines(os.getenv("BENCH_IDS_FILE")) do
      ids[#ids + 1] = line
   end
   headers["Content-Type"] = "application/json"
   headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
end

function request()
   local a = math.random(#ids)
   local b = math.random(#ids)
   while b == a do b = math.random(#ids) end
   local c = math.random(#ids)
   while c == a or c == b do c = math.random(#ids) end
   local body = string.format(
      '{"items":[{"product_id":"%s","quantity":%d},{"product_id":"%s","quantity":%d},{"product_id":"%s","quantity":%d}]}',
      ids[a], math.random(3), ids[b], math.random(3), ids[c], math.random(3))
   return wrk.format("POST", "/api/v1/orders", headers, body)
end
