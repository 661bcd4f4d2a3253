-- wrk script: GET random Patients among the N loaded by load.py.
local n = tonumber(os.getenv("HEARTH_BENCH_N") or "10000")
math.randomseed(os.time())
wrk.headers["Accept"] = "application/fhir+json"
request = function()
  return wrk.format("GET", "/Patient/bench-" .. math.random(0, n - 1))
end
