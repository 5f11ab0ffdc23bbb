-- GET /api/v1/products/{id} with an id drawn at random from the seeded products.
-- BENCH_IDS_FILE: a file with one product id per line (bench/bench.py writes it).
local ids = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("seed", counter)
end

function init(args)
   math.randomseed(os.time() * 1000 + (seed or 0))
   for line in io.lines(os.getenv("BENCH_IDS_FILE")) do
      ids[#ids + 1] = line
   end
end

function request()
   return wrk.format("GET", "/api/v1/products/" .. ids[math.random(#ids)])
end
