-- wrk script: POST the same Patient again and again (each is a new resource).
local f = assert(io.open(os.getenv("HEARTH_BENCH_BODY") or "bench/patient.json", "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.headers["Accept"] = "application/fhir+json"
wrk.headers["Prefer"] = "return=minimal"

-- wrk itself reports any non-2xx responses.
